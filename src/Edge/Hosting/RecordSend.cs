using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Broker.Edge.Hosting;

/// <summary>
/// How the node sends to a client over plain TCP. Two ways, chosen per connection at its first send from the window the
/// client offers then (its receive buffer; on loopback the node's segment size becomes half the largest window offered):
/// <list type="bullet">
/// <item>A client with a small receive buffer (MQTTnet's default is 8 KiB; its window a few KiB) gets sends of at most
/// <see cref="PlainSendSize"/> bytes, as before. Larger segments let its window fall below the node's segment size, and
/// Linux then sends one window per tick of its persist timer, 200 ms: the subscriber stalls (with sends of 768 bytes at
/// 64-byte messages already). Sent as records (below) with 512 bytes, the 1 KiB rate halved; sent as records of 4 KiB,
/// the client's own cost per message rose as much as the node's fell (docs/benchmarks.md, "Records").</item>
/// <item>A client that offers a window of at least <see cref="LargeWindow"/> (every client that leaves its buffers to the
/// kernel) gets sends of up to <see cref="MaxSendSize"/> bytes, each marked <c>MSG_EOR</c>: the kernel queues each as a
/// segment of its own and never appends later bytes to it, so no segment is larger than a send, however long the bytes
/// wait for the client's window, and a window with room for one send always gets it. Fewer, larger sends cut the
/// node's CPU per 1 KiB message to such a client by two fifths (docs/benchmarks.md).</item>
/// </list>
/// </summary>
internal static partial class RecordSend
{
    private const int MsgDontWait = 0x40;
    private const int MsgEor = 0x80;
    private const int MsgNoSignal = 0x4000;
    private const int IpProtoTcp = 6;
    private const int TcpInfo = 11;

    /// <summary>Where <c>tcpi_snd_wnd</c> (the window the peer offers, Linux 5.4 and later) lies in <c>struct tcp_info</c>.</summary>
    private const int SendWindowOffset = 228;

    /// <summary>The most bytes one send carries to a client with a small window (and over TLS, whose records the kernel may merge).</summary>
    public const int PlainSendSize = 512;

    /// <summary>The most bytes one send (one record) carries to a client with a large window.</summary>
    public const int MaxSendSize = 4096;

    /// <summary>The window a client must offer at the first send to be sent records (MQTTnet's default 8 KiB buffer offers 8 KiB).</summary>
    public const int LargeWindow = 16384;

    /// <summary>Linux: <c>MSG_EOR</c> and <c>TCP_INFO</c> are available.</summary>
    public static bool Supported { get; } = OperatingSystem.IsLinux();

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint send(nint fd, byte* buffer, nuint length, int flags);

    /// <summary>
    /// The most bytes one send to this connection carries: <see cref="MaxSendSize"/>, sent as records with
    /// <see cref="TrySend"/>, when the client offers a window of at least <see cref="LargeWindow"/>; else
    /// <see cref="PlainSendSize"/>, sent the ordinary way.
    /// </summary>
    public static int SendSize(Socket socket) =>
        Supported && SendWindow(socket) is { } window && window >= LargeWindow ? MaxSendSize : PlainSendSize;

    /// <summary>The window the peer offers now, or null where the kernel does not tell it.</summary>
    public static uint? SendWindow(Socket socket)
    {
        Span<byte> info = stackalloc byte[256]; // struct tcp_info is 232 bytes and more in newer kernels
        try
        {
            var length = socket.GetRawSocketOption(IpProtoTcp, TcpInfo, info);
            return length >= SendWindowOffset + sizeof(uint) ? BitConverter.ToUInt32(info[SendWindowOffset..]) : null;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>
    /// Sends what the socket's buffer takes now, as one record; returns the bytes sent, or 0 when nothing went (the
    /// buffer is full, or the send failed): the caller then sends the ordinary way, which waits for room or reports the error.
    /// </summary>
    public static unsafe int TrySend(Socket socket, ReadOnlySpan<byte> data)
    {
        SafeHandle? handle = null;
        var added = false;
        try
        {
            handle = socket.SafeHandle;
            // Held so the descriptor cannot be closed (and its number given to another connection) during the call.
            handle.DangerousAddRef(ref added);
            fixed (byte* p = data)
            {
                var n = send(handle.DangerousGetHandle(), p, (nuint)data.Length, MsgEor | MsgDontWait | MsgNoSignal);
                return n > 0 ? (int)n : 0;
            }
        }
        catch (ObjectDisposedException)
        {
            return 0;
        }
        finally
        {
            if (added)
            {
                handle!.DangerousRelease();
            }
        }
    }
}
