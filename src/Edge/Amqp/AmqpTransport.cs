using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Broker.Edge.Hosting;
using Broker.Actors.Amqp.Content;

namespace Broker.Edge.Amqp;

/// <summary>A method frame from the client, other than a basic.publish; <paramref name="Size"/>: its payload on the wire.</summary>
internal sealed record AmqpInboundMethod(ushort Channel, AmqpMethod Method, int Size = 0);

/// <summary>A basic.publish with its content (header properties exactly as sent, and the whole body).</summary>
internal sealed record AmqpInboundPublish(ushort Channel, BasicPublish Method, byte[] Properties, byte[] Body)
{
    /// <summary>What the read loop counted for it against the inbound high-water mark.</summary>
    public int Size => Properties.Length + Body.Length;
}

/// <summary>The node's memory alarm blocked this client at a publish (true), or let it go on (false).</summary>
internal sealed record AmqpBlocked(bool Blocked);

/// <summary>The byte stream broke the protocol: the connection closes with <paramref name="Code"/> (501, 502, 505, 540…).</summary>
internal sealed record AmqpTransportError(ushort Code, string Text, ushort ClassId = 0, ushort MethodId = 0);

/// <summary>A publish whose body is larger than the configured maximum: a channel error (406), the connection lives on.</summary>
internal sealed record AmqpContentTooLarge(ushort Channel, ulong Size);

/// <summary>The first 8 bytes were the AMQP 0.9.1 protocol header.</summary>
internal sealed record AmqpHeaderAccepted
{
    public static readonly AmqpHeaderAccepted Instance = new();
}

internal sealed record AmqpTransportClosed
{
    public static readonly AmqpTransportClosed Instance = new();
}

/// <summary>Nothing arrived from the client for two heartbeat intervals (or the handshake took too long).</summary>
internal sealed record AmqpDeadlinePassed
{
    public static readonly AmqpDeadlinePassed Instance = new();
}

/// <summary>Nothing was sent for one heartbeat interval: the connection sends a heartbeat frame.</summary>
internal sealed record AmqpHeartbeatDue
{
    public static readonly AmqpHeartbeatDue Instance = new();
}

/// <summary>
/// One AMQP client socket. The read loop checks the protocol header, splits frames (refusing one larger
/// than the negotiated frame_max before reading its payload), decodes methods and assembles each
/// basic.publish with its content header and body frames, then tells the connection actor. Outbound frames
/// are written by that actor into a <see cref="SocketOutput"/>; neither side holds a buffer while the client is idle.
/// </summary>
internal sealed class AmqpTransport
{
    /// <summary>Before tune-ok, frames may be as large as the spec's minimum frame_max guarantees.</summary>
    public const uint HandshakeFrameMax = 4096;

    private readonly ClientLink _link;
    private readonly SocketOutput _output;

    private readonly ClientDeadline _deadline = new();
    private long _receiveTimeoutMs;
    private long _lastSentMs = Environment.TickCount64;
    private long _heartbeatMs;
    private uint _frameMax = HandshakeFrameMax;
    private bool _discarding;

    /// <summary>Set once connection.open has been read: no channel may be used before it (read-loop thread only).</summary>
    private bool _openRead;

    /// <summary>Sum of the body buffers and properties of <see cref="PendingContent"/> on all channels (read-loop thread only).</summary>
    private long _pendingBytes;

    /// <summary>Methods and publishes handed to the connection actor and not yet acted on; the read loop pauses above its mark.</summary>
    public InboundGate Inbound { get; }

    /// <summary>While the node's memory alarm is set, a basic.publish from this client waits unread (and so does all after it).</summary>
    public MemoryAlarm? Alarm { get; init; }

    public AmqpTransport(ClientLink link, long inboundHighWaterMark)
    {
        Inbound = new InboundGate(inboundHighWaterMark);
        _link = link;
        _output = new SocketOutput(link, Broker.Actors.Messages.BrokerCounters.Amqp);
    }

    public string Remote => _link.Remote;

    /// <summary>The client connects from this machine (the default guest user is accepted only then).</summary>
    public bool IsLoopback => _link.IsLoopback;

    public System.Net.IPAddress? RemoteAddress => _link.RemoteAddress;

    /// <summary>The client's publish rate (broker.limits); null: none. Beyond it the client is slowed by not reading its socket.</summary>
    public PublishLimiter? Limiter { get; init; }

    /// <summary>Largest frame the client may send, set by the actor once tune-ok is in.</summary>
    public uint FrameMax
    {
        get => Volatile.Read(ref _frameMax);
        set => Volatile.Write(ref _frameMax, value);
    }

    /// <summary>Largest body a publish may carry; bigger ones are refused with 406 without buffering them.</summary>
    public required ulong MaxMessageSize { get; init; }

    /// <summary>Bytes of unfinished publishes (bodies so far and properties) the connection may hold across all its channels (BrokerSettings.AmqpMaxPendingContentBytes).</summary>
    public required long MaxPendingContentBytes { get; init; }

    /// <summary>Deepest table nesting accepted in a method (BrokerSettings.AmqpMaxTableDepth).</summary>
    public required int MaxTableDepth { get; init; }

    /// <summary>
    /// The connection is closing: frames on channels other than 0 are dropped unread (the spec has a closing
    /// peer discard everything but close and close-ok), so a client cannot make it buffer content meanwhile.
    /// </summary>
    public void DiscardChannelFrames() => Volatile.Write(ref _discarding, true);

    /// <summary>When the connection must next show activity (see <see cref="ClientDeadline"/>).</summary>
    public long DeadlineMs
    {
        get => _deadline.Ms;
        set => _deadline.Ms = value;
    }

    public bool TakeOverdue(long nowMs) => _deadline.TakeOverdue(nowMs);

    /// <summary>
    /// Heartbeats negotiated: the client must send something at least every two intervals, and we send a
    /// heartbeat frame when we sent nothing for one interval. 0 turns both off.
    /// </summary>
    public void SetHeartbeat(TimeSpan interval)
    {
        var ms = (long)interval.TotalMilliseconds;
        Volatile.Write(ref _heartbeatMs, ms);
        Volatile.Write(ref _receiveTimeoutMs, ms * 2);
        DeadlineMs = ms == 0 ? long.MaxValue : Environment.TickCount64 + ms * 2;
    }

    /// <summary>True when a heartbeat interval passed since the last bytes went out.</summary>
    public bool HeartbeatDue(long nowMs)
    {
        var interval = Volatile.Read(ref _heartbeatMs);
        return interval > 0 && nowMs - Volatile.Read(ref _lastSentMs) >= interval;
    }

    /// <summary>Bytes written by the actor and not yet handed to the socket.</summary>
    public long PendingBytes => _output.PendingBytes;

    /// <summary>Where the connection actor (and only it) writes frames; <see cref="Flush"/> sends them.</summary>
    public IBufferWriter<byte> Output => _output.Writer;

    public void Flush()
    {
        if (_output.Flush() > 0)
        {
            Volatile.Write(ref _lastSentMs, Environment.TickCount64);
        }
    }

    /// <summary>No more frames: what is queued is sent, then the socket is shut down.</summary>
    public void CompleteOutput() => _output.Complete();

    public bool IsClosed => _output.IsClosed;

    /// <summary>A basic.publish whose header and body frames are still arriving.</summary>
    private sealed class PendingContent(BasicPublish method)
    {
        public readonly BasicPublish Method = method;
        public byte[]? Properties;
        public ulong Declared;
        /// <summary>Grows with the body frames (never past <see cref="Declared"/>); its length and that of <see cref="Properties"/> count towards <see cref="MaxPendingContentBytes"/>.</summary>
        public byte[] Body = [];
        public ulong Received;
        public bool Dropping;
    }

    /// <summary>
    /// Reads and frames until the connection ends, telling the actor each method and publish; then waits for the
    /// output to drain, closes the socket and calls <paramref name="ended"/>.
    /// </summary>
    public async Task RunAsync(IActorRef connection, Action<IActorRef> ended, CancellationToken ct)
    {
        var input = new SocketInput(_link, Broker.Actors.Messages.BrokerCounters.Amqp, _output);
        var headerSeen = false;
        var pending = new Dictionary<ushort, PendingContent>();
        var receive = true;
        try
        {
            await _link.OpenAsync(ct).ConfigureAwait(false);
            while (true)
            {
                if (receive && !input.Commit(await input.ReceiveAsync(ct).ConfigureAwait(false)))
                {
                    return;
                }
                receive = true;
                var buffer = input.Buffered;
                if (!headerSeen)
                {
                    if (!AmqpProtocolHeader.TryRead(ref buffer, out var valid))
                    {
                        input.Consume(buffer.Start);
                        continue;
                    }
                    if (!valid)
                    {
                        // The spec's answer to a header we do not speak: our own header, then close.
                        Output.Write(AmqpProtocolHeader.Bytes);
                        Flush();
                        CompleteOutput();
                        return;
                    }
                    headerSeen = true;
                    connection.Tell(AmqpHeaderAccepted.Instance);
                }
                var any = false;
                var paused = false;
                var blocked = false;
                var rateWaitMs = 0L;
                while (true)
                {
                    if (Inbound.IsAboveHighWater)
                    {
                        paused = true;
                        break;
                    }
                    var unread = buffer;
                    var status = AmqpFrameReader.TryRead(ref buffer, FrameMax, out var frame);
                    if (status == AmqpFrameStatus.Complete && Alarm is { IsActive: true } && IsBasicPublish(frame))
                    {
                        buffer = unread;
                        blocked = true;
                        break;
                    }
                    if (status == AmqpFrameStatus.Incomplete)
                    {
                        break;
                    }
                    // basic.publish counts a message, its body frames their bytes.
                    if (status == AmqpFrameStatus.Complete && Limiter is { } limiter && (frame.Type == AmqpFrameType.Body || IsBasicPublish(frame))
                        && (rateWaitMs = limiter.Take(unread.Length - buffer.Length, Environment.TickCount64, message: frame.Type != AmqpFrameType.Body)) > 0)
                    {
                        buffer = unread;
                        break;
                    }
                    if (status != AmqpFrameStatus.Complete)
                    {
                        connection.Tell(new AmqpTransportError(AmqpReplyCode.FrameError,
                            status == AmqpFrameStatus.TooLarge ? $"frame larger than frame_max {FrameMax}" : "frame end octet missing"));
                        return;
                    }
                    any = true;
                    if (!HandleFrame(connection, frame, pending))
                    {
                        return;
                    }
                }
                if (any)
                {
                    var timeout = Volatile.Read(ref _receiveTimeoutMs);
                    if (timeout > 0)
                    {
                        DeadlineMs = Environment.TickCount64 + timeout;
                    }
                }
                if (rateWaitMs > 0)
                {
                    input.Consume(buffer.Start);
                    await Task.Delay(TimeSpan.FromMilliseconds(rateWaitMs), ct).ConfigureAwait(false);
                    receive = false;
                    continue;
                }
                if (paused)
                {
                    // Complete frames may remain in the buffer: frame them again before receiving more.
                    input.Consume(buffer.Start);
                    await Inbound.WaitAsync(ct).ConfigureAwait(false);
                    receive = false;
                    continue;
                }
                if (blocked)
                {
                    input.Consume(buffer.Start);
                    connection.Tell(new AmqpBlocked(true));
                    await _deadline.WaitWhileBlockedAsync(Alarm!, ct).ConfigureAwait(false);
                    connection.Tell(new AmqpBlocked(false));
                    receive = false;
                    continue;
                }
                input.Consume(buffer.Start);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The peer went away or the node is stopping: the actor learns it from AmqpTransportClosed.
        }
        finally
        {
            input.Release();
            connection.Tell(AmqpTransportClosed.Instance);
            // Let the actor's last frames go out (it completes the output when it stops), then close the socket.
            await _output.DrainAsync().ConfigureAwait(false);
            ended(connection);
        }
    }

    /// <summary>A method frame of basic.publish: class 60, method 40 at the start of its payload.</summary>
    private static bool IsBasicPublish(in AmqpFrame frame)
    {
        if (frame.Type != AmqpFrameType.Method || frame.Payload.Length < 4)
        {
            return false;
        }
        Span<byte> ids = stackalloc byte[4];
        frame.Payload.Slice(0, 4).CopyTo(ids);
        return ids is [0, 60, 0, 40];
    }

    private void Hand(IActorRef connection, AmqpInboundPublish publish)
    {
        Inbound.Add(publish.Size);
        connection.Tell(publish);
    }

    /// <summary>Handles one frame; false when the connection must end (the actor was told why).</summary>
    private bool HandleFrame(IActorRef connection, in AmqpFrame frame, Dictionary<ushort, PendingContent> pending)
    {
        if (frame.Channel != 0 && frame.Type != AmqpFrameType.Heartbeat)
        {
            if (Volatile.Read(ref _discarding))
            {
                if (pending.Count > 0)
                {
                    pending.Clear();
                    _pendingBytes = 0;
                }
                return true;
            }
            if (!_openRead)
            {
                // Refused unread: before connection.open nothing may make the node buffer content for a channel.
                connection.Tell(new AmqpTransportError(AmqpReplyCode.ChannelError, $"CHANNEL_ERROR - frame on channel {frame.Channel} before connection.open"));
                return false;
            }
        }
        switch (frame.Type)
        {
            case AmqpFrameType.Heartbeat:
                if (frame.Channel != 0)
                {
                    connection.Tell(new AmqpTransportError(AmqpReplyCode.FrameError, "heartbeat frame on a channel other than 0"));
                    return false;
                }
                return true;
            case AmqpFrameType.Method:
            {
                if (pending.ContainsKey(frame.Channel))
                {
                    connection.Tell(new AmqpTransportError(AmqpReplyCode.UnexpectedFrame, $"method frame on channel {frame.Channel} while content was expected"));
                    return false;
                }
                AmqpMethod method;
                try
                {
                    method = AmqpMethodCodec.Decode(frame.Payload, MaxTableDepth);
                }
                catch (AmqpFormatException ex)
                {
                    connection.Tell(new AmqpTransportError(ex.ReplyCode, ex.Message, ex.ClassId, ex.MethodId));
                    return false;
                }
                if (method is BasicPublish publish)
                {
                    if (frame.Channel == 0)
                    {
                        connection.Tell(new AmqpTransportError(AmqpReplyCode.CommandInvalid, "COMMAND_INVALID - basic.publish on channel 0", 60, 40));
                        return false;
                    }
                    pending[frame.Channel] = new PendingContent(publish);
                }
                else
                {
                    if (frame.Channel == 0 && method is ConnectionOpen)
                    {
                        _openRead = true;
                    }
                    var size = (int)frame.Payload.Length;
                    Inbound.Add(size);
                    connection.Tell(new AmqpInboundMethod(frame.Channel, method, size));
                }
                return true;
            }
            case AmqpFrameType.Header:
            {
                if (!pending.TryGetValue(frame.Channel, out var content) || content.Properties is not null || content.Dropping)
                {
                    connection.Tell(new AmqpTransportError(AmqpReplyCode.UnexpectedFrame, $"content header frame on channel {frame.Channel} without a publish"));
                    return false;
                }
                if (!AmqpFrameWriter.TryReadContentHeader(frame.Payload, out var classId, out var bodySize, out var properties) || classId != 60)
                {
                    connection.Tell(new AmqpTransportError(AmqpReplyCode.FrameError, "malformed content header frame"));
                    return false;
                }
                content.Declared = bodySize;
                if (bodySize > MaxMessageSize)
                {
                    // Read and drop the body frames so the connection stays usable; the channel gets the error.
                    content.Dropping = true;
                    content.Properties = [];
                    connection.Tell(new AmqpContentTooLarge(frame.Channel, bodySize));
                    if (bodySize == 0)
                    {
                        pending.Remove(frame.Channel);
                    }
                    return true;
                }
                if (bodySize == 0)
                {
                    pending.Remove(frame.Channel);
                    Hand(connection, new AmqpInboundPublish(frame.Channel, content.Method, properties.ToArray(), []));
                    return true;
                }
                // The properties wait with the body, so they count towards the connection's bound as well.
                if (_pendingBytes + properties.Length > MaxPendingContentBytes)
                {
                    TellTooMuchPending(connection);
                    return false;
                }
                _pendingBytes += properties.Length;
                content.Properties = properties.ToArray();
                // Nothing is allocated for the body yet: the declared size is only a claim until its bytes arrive.
                return true;
            }
            case AmqpFrameType.Body:
            {
                if (!pending.TryGetValue(frame.Channel, out var content) || content.Properties is null)
                {
                    connection.Tell(new AmqpTransportError(AmqpReplyCode.UnexpectedFrame, $"content body frame on channel {frame.Channel} without a content header"));
                    return false;
                }
                var length = (ulong)frame.Payload.Length;
                if (content.Received + length > content.Declared)
                {
                    connection.Tell(new AmqpTransportError(AmqpReplyCode.FrameError, "content body larger than its header declared"));
                    return false;
                }
                if (content.Dropping)
                {
                    content.Received += length;
                    if (content.Received == content.Declared)
                    {
                        pending.Remove(frame.Channel);
                    }
                    return true;
                }
                if (!Grow(content, (int)(content.Received + length)))
                {
                    TellTooMuchPending(connection);
                    return false;
                }
                frame.Payload.CopyTo(content.Body.AsSpan((int)content.Received));
                content.Received += length;
                if (content.Received == content.Declared)
                {
                    pending.Remove(frame.Channel);
                    _pendingBytes -= content.Body.Length + content.Properties.Length;
                    Hand(connection, new AmqpInboundPublish(frame.Channel, content.Method, content.Properties, content.Body));
                }
                return true;
            }
            default:
                connection.Tell(new AmqpTransportError(AmqpReplyCode.FrameError, $"unknown frame type {frame.Type}"));
                return false;
        }
    }

    private void TellTooMuchPending(IActorRef connection) =>
        connection.Tell(new AmqpTransportError(AmqpReplyCode.ResourceError,
            $"RESOURCE_ERROR - more than {MaxPendingContentBytes} bytes of unfinished messages on this connection"));

    /// <summary>
    /// Makes room for <paramref name="needed"/> body bytes: the buffer doubles, capped at the declared size (which
    /// passed <see cref="MaxMessageSize"/>), so the last buffer is exactly the body and is handed on without a copy.
    /// False when the connection's unfinished bodies would pass <see cref="MaxPendingContentBytes"/>; nothing was allocated then.
    /// </summary>
    private bool Grow(PendingContent content, int needed)
    {
        var current = content.Body.Length;
        if (needed <= current)
        {
            return true;
        }
        var capacity = (int)Math.Min(content.Declared, (ulong)Math.Max(needed, (long)current * 2));
        if (_pendingBytes + (capacity - current) > MaxPendingContentBytes)
        {
            return false;
        }
        _pendingBytes += capacity - current;
        Array.Resize(ref content.Body, capacity);
        return true;
    }
}
