using Broker.Edge.Hosting;

namespace Broker.Edge.Mqtt;

/// <summary>
/// The deadline rules of one MQTT connection, applied to its <see cref="ClientDeadline"/> (which the listener's sweep
/// checks, and which waits while the memory alarm keeps the client unread): the connect timeout until CONNACK, then
/// 1.5 × the keep alive from the last packet, then the close grace period. Holds the keep alive and when the last
/// packet arrived (<see cref="Environment.TickCount64"/> ms); no timer.
/// </summary>
internal sealed class MqttKeepAlive
{
    /// <summary>After our last packets, how long the client has to take them before the socket is dropped.</summary>
    public const long CloseGraceMs = 5000;

    private ushort _seconds;
    private long _lastPacketAtMs;

    /// <summary>The keep alive in force (0 = none): the server's, when it sets one for MQTT 5 clients, else the client's.</summary>
    public ushort Seconds => _seconds;

    /// <summary>When a client silent since its last packet is disconnected (MQTT 3.1.1 §3.1.2.10); never without a keep alive.</summary>
    public long DeadlineMs => _seconds > 0 ? _lastPacketAtMs + _seconds * 1500L : long.MaxValue;

    /// <summary>MQTT 5 §3.2.2.3.14: a Server Keep Alive in CONNACK replaces the client's value.</summary>
    public static ushort Negotiate(bool v5, ushort serverKeepAlive, ushort requested) =>
        v5 && serverKeepAlive > 0 ? serverKeepAlive : requested;

    /// <summary>CONNECT arrived: the session has the connect timeout to answer.</summary>
    public void OnConnect(ClientDeadline deadline, long nowMs, ushort seconds, TimeSpan connectTimeout)
    {
        _lastPacketAtMs = nowMs;
        _seconds = seconds;
        deadline.Ms = nowMs + (long)connectTimeout.TotalMilliseconds;
    }

    /// <summary>CONNACK sent: from now on the keep alive counts, from the CONNECT or the packets since.</summary>
    public void OnConnected(ClientDeadline deadline) => deadline.Ms = DeadlineMs;

    /// <summary>A packet from the client moves the deadline, unless the connection is closing (its grace period stays).</summary>
    public void OnPacket(ClientDeadline deadline, long nowMs, bool closing)
    {
        _lastPacketAtMs = nowMs;
        if (_seconds > 0 && !closing)
        {
            deadline.Ms = DeadlineMs;
        }
    }

    /// <summary>
    /// The sweep found the deadline passed: true when the client was silent too long, otherwise the deadline is set
    /// again (a deadline the sweep took while a packet moved it is not a timeout).
    /// </summary>
    public bool TimedOut(ClientDeadline deadline, long nowMs)
    {
        if (nowMs > DeadlineMs)
        {
            return true;
        }
        deadline.Ms = DeadlineMs;
        return false;
    }

    /// <summary>The connection is closing: the client has <see cref="CloseGraceMs"/> to take our last packets.</summary>
    public static void OnClosing(ClientDeadline deadline, long nowMs) => deadline.Ms = nowMs + CloseGraceMs;
}
