using System.Runtime.InteropServices;
using Broker.Edge.Hosting;
using Broker.Edge.Security;

// `passwd ...` and `token ...` manage the secrets files and exit (SecurityCommands); anything else starts a node.
if (SecurityCommands.Run(args, Console.In, Console.Out, Console.Error) is { } exitCode)
{
    return exitCode;
}

// Socket completions run on the socket engine's threads instead of being handed to the thread pool first: one thread
// hand-over less per read and per send (+15 % messages per second here, docs/benchmarks.md). Everything a completion
// continues with is short and never blocks (frame, decode, tell an actor; a send loop). Read once, when the first socket
// is opened, so it is set before the node starts; an operator's own setting (0 turns it off) wins.
if (Environment.GetEnvironmentVariable(SocketEngine.InlineCompletions) is null)
{
    Environment.SetEnvironmentVariable(SocketEngine.InlineCompletions, "1");
}

// Otherwise starts one broker node with cluster.hocon (overridden by BROKER_* environment variables) and runs
// until Ctrl-C or SIGTERM, then shuts down cleanly.
var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
void OnSignal(PosixSignalContext ctx)
{
    ctx.Cancel = true;
    stop.TrySetResult();
}
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);

BrokerNode node;
try
{
    node = await BrokerNode.StartAsync();
}
catch (Exception ex)
{
    await Console.Error.WriteLineAsync($"broker failed to start: {ex.Message}");
    return 1;
}
// SIGHUP reads the password, ACL, tokens, certificate and CA files again (they are also read again when they change).
using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, ctx =>
{
    ctx.Cancel = true;
    node.ReloadSecrets();
});
// Two ways out can meet on waking from a long pause: the pause detector's thread ends the process at once, and Main
// ends it when the cluster downed the node. The C library's exit must not run on two threads at the same time (a
// resumed node in the chaos tests once ended with 134, an abort, instead of 2), so the first to claim the exit takes
// it and the other waits for it.
var exiting = 0;
using var pauses = new PauseDetector(node.System, PauseDetector.Limit(node.System.Settings.Config), reason =>
{
    if (Interlocked.Exchange(ref exiting, 1) != 0)
    {
        return;
    }
    Console.Error.WriteLine(reason);
    Console.Error.Flush();
    Environment.Exit(2);
});
var signalled = await Task.WhenAny(stop.Task, node.WhenTerminated) == stop.Task;
if (Interlocked.Exchange(ref exiting, 1) != 0)
{
    // The pause detector is ending the process.
    await Task.Delay(Timeout.Infinite);
}
if (!signalled)
{
    // Not asked to stop: the cluster downed this node (it was unreachable to the majority) or the actor system failed.
    await Console.Error.WriteLineAsync("the node's actor system stopped by itself (downed by the cluster?); exiting");
}
Console.WriteLine("shutting down");
await node.DisposeAsync();
Console.WriteLine("stopped");
return signalled ? 0 : 2;
