namespace Broker.Edge.Hosting;

/// <summary>Names of the runtime's socket engine settings the node sets for itself (Program.cs).</summary>
internal static class SocketEngine
{
    /// <summary>"1": socket completions continue on the engine's epoll threads (one per core) instead of the thread pool.</summary>
    public const string InlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
}
