namespace Broker.Actors.Messages;

/// <summary>A cumulative count, safe to bump from any thread without a lock or an allocation.</summary>
public sealed class Counter
{
    private long _value;

    public long Value => Interlocked.Read(ref _value);

    public void Increment() => Interlocked.Increment(ref _value);

    public void Add(long n) => Interlocked.Add(ref _value, n);
}

/// <summary>A level that goes up and down (sessions held now), safe to move from any thread.</summary>
public sealed class Gauge
{
    private long _value;

    public long Value => Interlocked.Read(ref _value);

    public void Add(long delta) => Interlocked.Add(ref _value, delta);
}

/// <summary>Why a client connection ended (the label of broker_connections_closed_total).</summary>
public enum CloseReason
{
    /// <summary>The client closed it (DISCONNECT, connection.close, or its socket went away).</summary>
    Client,
    ProtocolError,
    KeepAliveTimeout,
    TakenOver,
    /// <summary>An operator disconnected it (admin API).</summary>
    Kicked,
    /// <summary>Its login or its will was refused.</summary>
    Refused,
    RateLimit,
    ServerShutdown,
    Other,
}

/// <summary>
/// What one protocol's connections did on this node since it started: connections opened and closed, messages and
/// bytes in and out (messages by QoS; AMQP counts every message as QoS 0), protocol errors. Each count is one
/// interlocked add on the path that does the work: no lock, no allocation.
/// </summary>
public sealed class ProtocolCounters(string protocol)
{
    private readonly long[] _received = new long[3];
    private readonly long[] _sent = new long[3];
    private long _opened;
    private long _closed;
    private long _bytesReceived;
    private long _bytesSent;
    private long _protocolErrors;
    private readonly long[] _closedBy = new long[Enum.GetValues<CloseReason>().Length];

    /// <summary>The label each <see cref="CloseReason"/> has in the counts.</summary>
    public static readonly string[] CloseReasonNames =
        ["client", "protocol_error", "keepalive_timeout", "taken_over", "kicked", "refused", "rate_limit", "server_shutdown", "other"];

    /// <summary>"mqtt" or "amqp".</summary>
    public string Protocol { get; } = protocol;

    public void ConnectionOpened() => Interlocked.Increment(ref _opened);

    public void ConnectionClosed() => Interlocked.Increment(ref _closed);

    public void Received(int qos) => Interlocked.Increment(ref _received[Math.Clamp(qos, 0, 2)]);

    public void Sent(int qos) => Interlocked.Increment(ref _sent[Math.Clamp(qos, 0, 2)]);

    public void BytesReceived(long n) => Interlocked.Add(ref _bytesReceived, n);

    public void BytesSent(long n) => Interlocked.Add(ref _bytesSent, n);

    public void ProtocolError() => Interlocked.Increment(ref _protocolErrors);

    /// <summary>A connection's actor ended, for <paramref name="reason"/>.</summary>
    public void ClosedBy(CloseReason reason) => Interlocked.Increment(ref _closedBy[(int)reason]);

    /// <summary>The counts now, as name → value (names as in <see cref="BrokerCounters.Snapshot"/>, without the protocol).</summary>
    public void AddTo(IDictionary<string, long> into)
    {
        var opened = Interlocked.Read(ref _opened);
        var closed = Interlocked.Read(ref _closed);
        into[Protocol + ".connections.total"] = opened;
        into[Protocol + ".connections.disconnections"] = closed;
        into[Protocol + ".connections.current"] = Math.Max(0, opened - closed);
        for (var qos = 0; qos < 3; qos++)
        {
            into[$"{Protocol}.messages.received.qos{qos}"] = Interlocked.Read(ref _received[qos]);
            into[$"{Protocol}.messages.sent.qos{qos}"] = Interlocked.Read(ref _sent[qos]);
        }
        into[Protocol + ".bytes.received"] = Interlocked.Read(ref _bytesReceived);
        into[Protocol + ".bytes.sent"] = Interlocked.Read(ref _bytesSent);
        into[Protocol + ".errors.protocol"] = Interlocked.Read(ref _protocolErrors);
        for (var i = 0; i < _closedBy.Length; i++)
        {
            into[$"{Protocol}.closed.{CloseReasonNames[i]}"] = Interlocked.Read(ref _closedBy[i]);
        }
    }
}

/// <summary>
/// Node-wide counts of what the broker could not deliver or refused, each also logged where it happens, so
/// nothing is dropped silently. The admin API and metrics read them.
/// </summary>
public static class BrokerCounters
{
    /// <summary>QoS 1/2 or confirmed publishes whose targets did not all answer after every resend (MQTT and AMQP).</summary>
    public static readonly Counter PublishesGivenUp = new();

    /// <summary>Retained messages the store refused because the cluster's retained limits were reached.</summary>
    public static readonly Counter RetainedRefused = new();

    /// <summary>QoS 0 messages a session dropped because too many messages waited for it (<c>mqtt.qos0-drop-backlog</c>).</summary>
    public static readonly Counter Qos0Dropped = new();

    /// <summary>QoS 0 messages a connection dropped because its client had too many bytes unsent (<c>mqtt.qos0-drop-pending-bytes</c>).</summary>
    public static readonly Counter Qos0SlowClientDropped = new();

    /// <summary>Logins refused: unknown user, wrong password, anonymous where it is not allowed (the admin API's <c>errors.auth</c>).</summary>
    public static readonly Counter AuthDenied = new();

    /// <summary>Publishes, subscriptions and wills refused by the ACL (the admin API's <c>errors.authz</c>).</summary>
    public static readonly Counter AuthzDenied = new();

    /// <summary>Logins the HTTP authentication backend did not answer (refused as unavailable).</summary>
    public static readonly Counter AuthBackendFailures = new();

    /// <summary>TLS handshakes that failed or did not finish in time (wrong certificate, plain bytes on a TLS port, a scanner).</summary>
    public static readonly Counter TlsHandshakeFailures = new();

    /// <summary>Connections refused at accept by broker.limits (node or listener full, connect rate, failed logins) or for want of file descriptors.</summary>
    public static readonly Counter ConnectionsRefused = new();

    /// <summary>Sessions the session indexes of this process hold (connected, and all in memory).</summary>
    public static readonly Gauge SessionsConnected = new();

    public static readonly Gauge SessionsInMemory = new();

    /// <summary>QoS 1/2 messages sent to clients and not yet acknowledged, and messages queued for clients, in the sessions held in memory.</summary>
    public static readonly Gauge SessionInflight = new();

    public static readonly Gauge SessionQueued = new();

    /// <summary>AMQP messages ready and delivered-unacknowledged in the queues this process runs.</summary>
    public static readonly Gauge QueueReady = new();

    public static readonly Gauge QueueUnacked = new();

    /// <summary>
    /// A queue heard a consumer's connection stopped and waited for its last acks: the times its drain marker came back,
    /// and the times it stopped waiting after <c>amqp.drain-wait</c> instead (a marker lost).
    /// </summary>
    public static readonly Counter QueueDrained = new();

    public static readonly Counter QueueDrainTimeouts = new();

    /// <summary>Retained messages in the store, on the node that runs it.</summary>
    public static readonly Gauge Retained = new();

    /// <summary>AMQP publishes confirmed to their publishers (basic.ack in confirm mode; a multiple ack counts each).</summary>
    public static readonly Counter AmqpConfirms = new();

    public static readonly Counter AmqpNacks = new();

    /// <summary>Subscriptions of the sessions held in memory (shared ones included).</summary>
    public static readonly Gauge Subscriptions = new();

    /// <summary>
    /// Observers of the session journal's durable writes (one transaction of a batch, in seconds): the metrics of each
    /// node in the process add one (Prometheus histogram), and take it off when they stop.
    /// </summary>
    public static event Action<double>? JournalWriteObserved;

    public static void ObserveJournalWrite(double seconds) => JournalWriteObserved?.Invoke(seconds);

    /// <summary>MQTT connections (TCP, TLS, WebSocket) and their messages.</summary>
    public static readonly ProtocolCounters Mqtt = new("mqtt");

    /// <summary>AMQP 0.9.1 connections (TCP, TLS) and their messages.</summary>
    public static readonly ProtocolCounters Amqp = new("amqp");

    /// <summary>
    /// Every count of this process (one node) by name: <c>mqtt.*</c> and <c>amqp.*</c> (<see cref="ProtocolCounters"/>),
    /// <c>errors.*</c> (denials, failures) and <c>dropped.*</c> (what could not be delivered). The admin API sums these
    /// over the members.
    /// </summary>
    public static Dictionary<string, long> Snapshot()
    {
        var all = new Dictionary<string, long>(StringComparer.Ordinal);
        Mqtt.AddTo(all);
        Amqp.AddTo(all);
        all["errors.auth"] = AuthDenied.Value;
        all["errors.authz"] = AuthzDenied.Value;
        all["errors.auth_backend"] = AuthBackendFailures.Value;
        all["errors.tls_handshake"] = TlsHandshakeFailures.Value;
        all["errors.connections_refused"] = ConnectionsRefused.Value;
        all["dropped.qos0_backlog"] = Qos0Dropped.Value;
        all["dropped.qos0_slow_client"] = Qos0SlowClientDropped.Value;
        all["dropped.publishes_given_up"] = PublishesGivenUp.Value;
        all["dropped.retained_refused"] = RetainedRefused.Value;
        return all;
    }
}
