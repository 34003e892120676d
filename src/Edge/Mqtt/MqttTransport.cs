using System.Buffers;
using System.Net.Sockets;
using System.Text;
using Akka.Actor;
using Broker.Edge.Hosting;
using MQTTnet.Adapter;
using MQTTnet.Exceptions;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace Broker.Edge.Mqtt;

/// <summary>
/// A decoded packet from the client, with its size on the wire. For an MQTT 5 DISCONNECT,
/// <paramref name="SessionExpiry"/> is its Session Expiry Interval when present (MQTTnet reads an absent one as 0).
/// </summary>
internal sealed record InboundPacket(MqttPacket Packet, int Size, uint? SessionExpiry = null);

/// <summary>The first packet: a CONNECT, with the protocol version its header announced.</summary>
internal sealed record InboundConnect(MqttConnectPacket Packet, MqttProtocolVersion Version);

/// <summary>The byte stream broke the protocol; <paramref name="ReasonCode"/> is the MQTT 5 reason (0x81, 0x82, 0x95).</summary>
internal sealed record TransportError(byte ReasonCode, string Message);

/// <summary>The CONNECT named a protocol level we do not speak: answer with CONNACK 0x01 and close.</summary>
internal sealed record UnsupportedProtocol(byte Level);

/// <summary>An MQTT 3.x CONNECT with an empty client ID and clean session 0: CONNACK 0x02, then close.</summary>
internal sealed record IdentifierRejected;

internal sealed record TransportClosed
{
    public static readonly TransportClosed Instance = new();
}

/// <summary>The connection's deadline (connect timeout or 1.5 × keep alive) passed without activity.</summary>
internal sealed record DeadlinePassed
{
    public static readonly DeadlinePassed Instance = new();
}

/// <summary>
/// One client socket. Inbound bytes are received into a <see cref="SocketInput"/>, framed and decoded, and each
/// packet is told to the connection actor. Outbound packets are written by that actor into a <see cref="SocketOutput"/>,
/// whose sender gathers them into one send when the client is busy. Neither holds a buffer while the client is idle.
/// </summary>
internal sealed class MqttTransport
{
    private readonly ClientLink _link;
    private readonly SocketOutput _output;

    public MqttTransport(Socket socket, long inboundHighWaterMark)
        : this(new SocketLink(socket), inboundHighWaterMark)
    {
    }

    public MqttTransport(ClientLink link, long inboundHighWaterMark)
    {
        _link = link;
        _output = new SocketOutput(link, Broker.Actors.Messages.BrokerCounters.Mqtt);
        Inbound = new InboundGate(inboundHighWaterMark);
    }

    /// <summary>The client's publish rate (broker.limits); null: none.</summary>
    public PublishLimiter? Limiter { get; init; }

    /// <summary>The connection under the protocol (plain or TLS), for the client certificate.</summary>
    public ClientLink Link => _link;

    /// <summary>Packets handed to the connection actor and not yet acted on; the read loop pauses above its mark.</summary>
    public InboundGate Inbound { get; }

    /// <summary>While the node's memory alarm is set, a PUBLISH from this client waits unread (and so does all after it).</summary>
    public MemoryAlarm? Alarm { get; init; }

    public string Remote => _link.Remote;

    /// <summary>When the connection must next show activity; <see cref="MqttKeepAlive"/> sets it.</summary>
    public ClientDeadline Deadline { get; } = new();

    public long DeadlineMs
    {
        get => Deadline.Ms;
        set => Deadline.Ms = value;
    }

    public bool TakeOverdue(long nowMs) => Deadline.TakeOverdue(nowMs);

    /// <summary>Bytes written by the actor and not yet handed to the socket.</summary>
    public long PendingBytes => _output.PendingBytes;

    /// <summary>Copies one encoded packet into the output and hands it to the sender. Called only from the connection actor.</summary>
    public void Send(ArraySegment<byte> head, in ReadOnlySequence<byte> payload)
    {
        if (_output.IsClosed)
        {
            return;
        }
        var writer = _output.Writer;
        try
        {
            writer.Write(head);
            foreach (var segment in payload)
            {
                writer.Write(segment.Span);
            }
            _output.Flush();
        }
        catch (InvalidOperationException)
        {
            // Not expected from SocketOutput; kept so that a closing race can never fail the actor.
        }
    }

    /// <summary>Raw bytes (used for a CONNACK to a client whose protocol level we cannot encode for).</summary>
    public void SendRaw(byte[] bytes) => Send(new ArraySegment<byte>(bytes), ReadOnlySequence<byte>.Empty);

    /// <summary>No more packets: what is queued is sent, then the socket is shut down.</summary>
    public void CompleteOutput() => _output.Complete();

    /// <summary>Closes the socket now, dropping whatever is not sent yet (a client that stopped reading).</summary>
    public void Abort() => _output.Abort();

    /// <summary>
    /// Reads, frames and decodes until the connection ends, telling the actor each packet; then waits for the output
    /// to drain, closes the socket and calls <paramref name="ended"/>. One state machine per connection while idle.
    /// </summary>
    public async Task RunAsync(IActorRef connection, int maxPacketSize, Action<IActorRef> ended, CancellationToken ct)
    {
        var input = new SocketInput(_link, Broker.Actors.Messages.BrokerCounters.Mqtt, _output);
        var version = MqttProtocolVersion.Unknown;
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
                    var status = MqttFrameReader.TryRead(ref buffer, maxPacketSize, out var header, out var body, out var total);
                    if (status == FrameStatus.Complete && header >> 4 == (int)MqttControlPacketType.Publish && Limiter is { } limiter
                        && (rateWaitMs = limiter.Take(total, Environment.TickCount64)) > 0)
                    {
                        if (version == MqttProtocolVersion.V500)
                        {
                            connection.Tell(new TransportError(0x96, "message rate too high (broker.limits.publish-rate-per-client)"));
                            return;
                        }
                        // MQTT 3.x has no code for it: the client is slowed by not reading its socket until the rate allows.
                        buffer = unread;
                        break;
                    }
                    if (status == FrameStatus.Complete && header >> 4 == (int)MqttControlPacketType.Publish && Alarm is { IsActive: true })
                    {
                        buffer = unread;
                        blocked = true;
                        break;
                    }
                    if (status == FrameStatus.Incomplete)
                    {
                        break;
                    }
                    if (status != FrameStatus.Complete)
                    {
                        connection.Tell(status == FrameStatus.TooLarge
                            ? new TransportError(0x95, "packet too large")
                            : new TransportError(0x81, "malformed remaining length"));
                        return;
                    }
                    // Decoded packets point into their body, so each body gets its own array.
                    var received = new ReceivedMqttPacket(header, new ArraySegment<byte>(body.ToArray()), total);
                    if (version == MqttProtocolVersion.Unknown)
                    {
                        if (header >> 4 != (int)MqttControlPacketType.Connect)
                        {
                            connection.Tell(new TransportError(0x82, "first packet is not CONNECT"));
                            return;
                        }
                        var level = ProtocolLevelOf(received.Body);
                        if (level is null)
                        {
                            connection.Tell(new TransportError(0x81, "unknown protocol name"));
                            return;
                        }
                        if (level is not (3 or 4 or 5))
                        {
                            connection.Tell(new UnsupportedProtocol(level.Value));
                            return;
                        }
                        if (level is 3 or 4 && RejectsEmptyClientId(received.Body))
                        {
                            connection.Tell(new IdentifierRejected());
                            return;
                        }
                        version = MqttCodec.VersionOf(level.Value);
                        if (!NameMatchesLevel(received.Body, level.Value))
                        {
                            // A level that belongs to the other name ("MQTT" 3, "MQIsdp" 4): still a level we do not speak.
                            connection.Tell(new UnsupportedProtocol(level.Value));
                            return;
                        }
                    }
                    var v5 = version == MqttProtocolVersion.V500;
                    if (MqttInputValidator.Check(header, received.Body, v5) is { } violation)
                    {
                        connection.Tell(new TransportError(violation.ReasonCode, violation.Message));
                        return;
                    }
                    MqttPacket packet;
                    try
                    {
                        packet = MqttCodec.For(version).Decode(received);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        connection.Tell(new TransportError(0x81, ex.Message));
                        return;
                    }
                    if (packet is MqttConnectPacket connect)
                    {
                        connection.Tell(new InboundConnect(connect, version));
                        continue;
                    }
                    Inbound.Add(total);
                    connection.Tell(packet is MqttDisconnectPacket && v5
                        ? new InboundPacket(packet, total, MqttInputValidator.DisconnectSessionExpiry(received.Body))
                        : new InboundPacket(packet, total));
                }
                if (rateWaitMs > 0)
                {
                    input.Consume(buffer.Start);
                    await Task.Delay(TimeSpan.FromMilliseconds(rateWaitMs), ct).ConfigureAwait(false);
                    receive = false;
                    continue;
                }
                if (paused || blocked)
                {
                    // Complete packets may remain in the buffer: frame them again before receiving more.
                    input.Consume(buffer.Start);
                    await (blocked ? Deadline.WaitWhileBlockedAsync(Alarm!, ct) : Inbound.WaitAsync(ct)).ConfigureAwait(false);
                    receive = false;
                    continue;
                }
                input.Consume(buffer.Start);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The peer went away or the node is stopping: the actor learns it from TransportClosed.
        }
        finally
        {
            input.Release();
            connection.Tell(TransportClosed.Instance);
            // Let the actor's last frames go out (it completes the output when it stops), then close the socket.
            await _output.DrainAsync().ConfigureAwait(false);
            ended(connection);
        }
    }

    /// <summary>
    /// CONNECT variable header: protocol name (2-byte length + UTF-8) then the level byte.
    /// Returns null when the name is neither "MQTT" nor "MQIsdp".
    /// </summary>
    internal static byte? ProtocolLevelOf(ArraySegment<byte> body)
    {
        var span = body.AsSpan();
        if (span.Length < 3)
        {
            return null;
        }
        var nameLength = (span[0] << 8) | span[1];
        if (span.Length < 2 + nameLength + 1)
        {
            return null;
        }
        var name = Encoding.UTF8.GetString(span.Slice(2, nameLength));
        return name is "MQTT" or "MQIsdp" ? span[2 + nameLength] : null;
    }

    /// <summary>"MQIsdp" goes with level 3 (MQTT 3.1), "MQTT" with levels 4 and 5.</summary>
    internal static bool NameMatchesLevel(ArraySegment<byte> body, byte level)
    {
        var isdp = body.Count >= 8 && body.AsSpan(2, 6).SequenceEqual("MQIsdp"u8);
        return isdp ? level == 3 : level is 4 or 5;
    }

    /// <summary>
    /// MQTT 3.x CONNECT: after name and level come the flags byte (bit 1 = clean session), two bytes of
    /// keep alive, then the client identifier's 2-byte length. True for an empty ID with clean session 0.
    /// </summary>
    internal static bool RejectsEmptyClientId(ArraySegment<byte> body)
    {
        var span = body.AsSpan();
        var flagsAt = 2 + ((span[0] << 8) | span[1]) + 1;
        if (span.Length < flagsAt + 5)
        {
            return false; // too short: the decoder reports it as malformed
        }
        var cleanSession = (span[flagsAt] & 0x02) != 0;
        var idLength = (span[flagsAt + 3] << 8) | span[flagsAt + 4];
        return idLength == 0 && (!cleanSession || span[flagsAt - 1] == 3);
    }
}
