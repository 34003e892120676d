using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Broker.Actors.Messages;
using Broker.Edge.Security;

namespace Broker.Edge.Hosting;

/// <summary>
/// The byte stream of one client connection under the MQTT and AMQP transports (<see cref="SocketInput"/>,
/// <see cref="SocketOutput"/>): a plain socket (<see cref="SocketLink"/>), TLS over one (<see cref="TlsLink"/>) or a
/// WebSocket (<see cref="WebSocketLink"/>). One receive and one send may run at a time, concurrently with each other.
/// </summary>
internal abstract class ClientLink : IDisposable
{
    protected ClientLink(EndPoint? remote)
    {
        Remote = remote?.ToString() ?? "?";
        RemoteAddress = (remote as IPEndPoint)?.Address;
        IsLoopback = RemoteAddress is { } ip && IPAddress.IsLoopback(ip);
    }

    /// <summary>The client's address (for the limits per source address).</summary>
    public IPAddress? RemoteAddress { get; }

    /// <summary>address:port of the client.</summary>
    public string Remote { get; }

    /// <summary>The client connects from this machine.</summary>
    public bool IsLoopback { get; }

    /// <summary>The certificate the client proved it holds in the TLS handshake, verified against the CA file; null without one.</summary>
    public virtual X509Certificate2? ClientCertificate => null;

    /// <summary>The user a verified client certificate names (its common name), when the node takes it as the user name; else null.</summary>
    public virtual string? CertificateUser => null;

    /// <summary>Finishes what the link needs before protocol bytes flow (the TLS handshake); an <see cref="IOException"/> when it fails.</summary>
    public virtual ValueTask OpenAsync(CancellationToken ct) => ValueTask.CompletedTask;

    /// <summary>
    /// Receives into <paramref name="buffer"/>; 0 when the peer closed. An empty buffer waits until data can be
    /// received, holding no buffer meanwhile (its 0 then means "ready", not "closed").
    /// </summary>
    public abstract ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken ct);

    /// <summary>Sends the start of <paramref name="data"/> and returns how many bytes went (at least one).</summary>
    public abstract ValueTask<int> SendAsync(ReadOnlyMemory<byte> data);

    /// <summary>The most bytes <see cref="SocketOutput"/> hands to one <see cref="SendAsync"/> (see <see cref="RecordSend"/>).</summary>
    public virtual int SendSize => RecordSend.PlainSendSize;

    /// <summary>Has the kernel acknowledge now what the client sent (<see cref="OwedAcks"/>); nothing where there is no TCP socket of ours.</summary>
    public virtual void QuickAck()
    {
    }

    /// <summary>No more bytes to send: tell the peer (a TCP shutdown; TLS close_notify first; a WebSocket close frame).</summary>
    public abstract void Shutdown();

    public abstract void Dispose();

    private const int IpProtoTcp = 6;
    private const int TcpQuickAck = 12;

    /// <summary><c>TCP_QUICKACK</c> (Linux): an acknowledgement the kernel holds back is sent now.</summary>
    protected static void QuickAck(Socket socket)
    {
        ReadOnlySpan<byte> on = [1, 0, 0, 0];
        try
        {
            socket.SetRawSocketOption(IpProtoTcp, TcpQuickAck, on);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Closed meanwhile: nothing is owed any more.
        }
    }

    protected static void Shutdown(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already gone.
        }
    }
}

/// <summary>A plain TCP connection.</summary>
internal sealed class SocketLink(Socket socket) : ClientLink(socket.RemoteEndPoint)
{
    public override ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken ct) => socket.ReceiveAsync(buffer, SocketFlags.None, ct);

    private int _sendSize;

    /// <summary>Chosen at the first send, once the handshake has told the client's window (<see cref="RecordSend"/>).</summary>
    public override int SendSize => _sendSize != 0 ? _sendSize : _sendSize = RecordSend.SendSize(socket);

    /// <summary>
    /// To a client with a large window, as one record where the socket takes it now (<see cref="RecordSend"/>); else,
    /// and when its buffer is full, the ordinary way, which waits for room (the kernel may then append the next record to
    /// that send's segment, up to its segment size: no larger than before records).
    /// </summary>
    public override ValueTask<int> SendAsync(ReadOnlyMemory<byte> data) =>
        SendSize > RecordSend.PlainSendSize && RecordSend.TrySend(socket, data.Span) is > 0 and var sent
            ? ValueTask.FromResult(sent)
            : socket.SendAsync(data, SocketFlags.None);

    public override void QuickAck() => QuickAck(socket);

    public override void Shutdown() => Shutdown(socket);

    public override void Dispose() => socket.Dispose();
}

/// <summary>
/// MQTT over WebSocket (MQTT 5 §6): bytes travel in binary messages, each send one whole message; a close frame from
/// the client ends the connection as a TCP close would.
/// </summary>
internal sealed class WebSocketLink(WebSocket webSocket, EndPoint? remote) : ClientLink(remote)
{
    public override async ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken ct)
    {
        if (webSocket.State != WebSocketState.Open)
        {
            return 0;
        }
        try
        {
            var result = await webSocket.ReceiveAsync(buffer, ct).ConfigureAwait(false);
            return result.MessageType == WebSocketMessageType.Close ? 0 : result.Count;
        }
        catch (WebSocketException ex)
        {
            throw new IOException(ex.Message, ex);
        }
    }

    public override async ValueTask<int> SendAsync(ReadOnlyMemory<byte> data)
    {
        try
        {
            await webSocket.SendAsync(data, WebSocketMessageType.Binary, endOfMessage: true, CancellationToken.None).ConfigureAwait(false);
            return data.Length;
        }
        catch (WebSocketException ex)
        {
            throw new IOException(ex.Message, ex);
        }
    }

    public override void Shutdown() => _ = CloseAsync();

    private async Task CloseAsync()
    {
        try
        {
            await webSocket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is WebSocketException or ObjectDisposedException or InvalidOperationException or IOException)
        {
            // Already closed or gone.
        }
    }

    public override void Dispose() => webSocket.Abort();
}

/// <summary>
/// TLS over a TCP connection (<see cref="ServerTls"/> decides certificates and what the client must show). The
/// stream keeps its own buffers, so a TLS connection costs more memory than a plain one even while idle.
/// </summary>
internal sealed class TlsLink : ClientLink
{
    private readonly SslStream _ssl;
    private readonly ServerTls _tls;
    private readonly Socket _socket;

    public TlsLink(Socket socket, ServerTls tls) : base(socket.RemoteEndPoint)
    {
        _socket = socket;
        _tls = tls;
        _ssl = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
    }

    public override X509Certificate2? ClientCertificate => _ssl.RemoteCertificate as X509Certificate2;

    public override string? CertificateUser =>
        _tls.CnAsUsername && ClientCertificate is { } certificate && certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false) is { Length: > 0 } cn
            ? cn
            : null;

    public override async ValueTask OpenAsync(CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_tls.HandshakeTimeout);
        try
        {
            await _ssl.AuthenticateAsServerAsync(_tls.Options(), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AuthenticationException or OperationCanceledException or IOException or SocketException)
        {
            BrokerCounters.TlsHandshakeFailures.Increment();
            _tls.Report($"TLS handshake with {Remote} failed: {(ex is OperationCanceledException ? "no handshake in time" : ex.Message)}");
            throw new IOException("TLS handshake failed", ex);
        }
    }

    public override ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken ct) => _ssl.ReadAsync(buffer, ct);

    public override async ValueTask<int> SendAsync(ReadOnlyMemory<byte> data)
    {
        await _ssl.WriteAsync(data).ConfigureAwait(false);
        return data.Length;
    }

    public override void QuickAck() => QuickAck(_socket);

    public override void Shutdown() => _ = CloseNotifyAsync();

    private async Task CloseNotifyAsync()
    {
        try
        {
            await _ssl.ShutdownAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or SocketException)
        {
            // The handshake never finished, or the peer is gone.
        }
        Shutdown(_socket);
    }

    public override void Dispose()
    {
        _ssl.Dispose();
        _socket.Dispose();
    }
}
