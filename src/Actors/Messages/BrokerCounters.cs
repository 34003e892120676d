namespace Broker.Actors.Messages;

/// <summary>A cumulative count, safe to bump from any thread without a lock or an allocation.</summary>
public sealed class Counter
{
    private long _value;

    public long Value => Interlocked.Read(ref _value);

    public void Increment() => Interlocked.Increment(ref _value);
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
}
