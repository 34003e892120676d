namespace Broker.Edge.Mqtt;

/// <summary>What a QoS 2 step answered by the session sends to the client.</summary>
internal enum Qos2Answer : byte
{
    /// <summary>The answer to a step that was already answered (a resend's): nothing.</summary>
    Stale,
    PubRec,
    PubComp,
}

/// <summary>
/// The publishes one MQTT client sends us, as far as the connection keeps them: its topic aliases, how many QoS 1/2
/// publishes are unacknowledged (against the receive maximum), and the QoS 2 packet ids — being routed, recorded by
/// the session (PUBREC sent, waiting for PUBREL), and steps the session has not answered yet (sent again until it does).
/// The connection creates it at the first publish that needs it, and each collection is created on first use.
/// </summary>
internal sealed class MqttInboundFlow
{
    private Dictionary<ushort, string>? _topicAliases;
    private HashSet<ushort>? _routing;
    private HashSet<ushort>? _recorded;
    private Dictionary<ushort, (bool Release, long SentAt)>? _awaiting;
    private int _unacknowledged;

    /// <summary>QoS 1/2 publishes taken and not yet answered with PUBACK, PUBREC with an error, or PUBCOMP.</summary>
    public int Unacknowledged => _unacknowledged;

    /// <summary>QoS 2 steps sent to the session and not answered yet.</summary>
    public bool AwaitsSession => _awaiting is { Count: > 0 };

    /// <summary>
    /// MQTT 5 §3.3.2.3.4: a PUBLISH with a topic and an alias sets the alias; with the alias alone it uses it.
    /// Returns the topic, or null with the DISCONNECT reason when the alias is out of range or unknown.
    /// </summary>
    public string? ResolveTopic(string? topic, ushort alias, ushort aliasMaximum, out MqttViolation violation)
    {
        violation = default;
        if (alias > aliasMaximum)
        {
            violation = new MqttViolation(0x94, "topic alias out of range");
            return null;
        }
        if (string.IsNullOrEmpty(topic))
        {
            if (_topicAliases is null || !_topicAliases.TryGetValue(alias, out var known))
            {
                violation = new MqttViolation(0x82, "unknown topic alias");
                return null;
            }
            return known;
        }
        (_topicAliases ??= [])[alias] = topic;
        return topic;
    }

    /// <summary>
    /// A QoS 2 PUBLISH whose packet id is being routed or recorded is a resend: it is not routed again.
    /// <paramref name="confirm"/>: the session has recorded it, so PUBREC is sent again.
    /// </summary>
    public bool IsResend(ushort packetId, out bool confirm)
    {
        confirm = _recorded?.Contains(packetId) == true;
        return confirm || _routing?.Contains(packetId) == true;
    }

    /// <summary>Counts a QoS 1/2 publish; false when it is one more than <paramref name="receiveMaximum"/> allows.</summary>
    public bool Admit(ushort receiveMaximum) => ++_unacknowledged <= receiveMaximum;

    /// <summary>A QoS 2 publish is on its way to its targets: a copy with its packet id is a resend.</summary>
    public void Routing(ushort packetId) => (_routing ??= []).Add(packetId);

    /// <summary>PUBACK sent for a QoS 1 publish.</summary>
    public void Acknowledged() => _unacknowledged--;

    /// <summary>MQTT 5: a PUBACK or PUBREC with an error reason ends the publish's flow.</summary>
    public void Refused(byte qos, ushort packetId)
    {
        _unacknowledged--;
        if (qos == 2)
        {
            _routing?.Remove(packetId);
        }
    }

    /// <summary>The session's record of the QoS 2 ids it has taken and not yet released (a session resumed on this connection).</summary>
    public void Restore(IEnumerable<ushort> recorded)
    {
        foreach (var packetId in recorded)
        {
            (_recorded ??= []).Add(packetId);
        }
    }

    /// <summary>A PUBREL for an id the session has recorded is a release to ask it for; any other is answered at once.</summary>
    public bool IsRecorded(ushort packetId) => _recorded?.Contains(packetId) == true;

    /// <summary>A QoS 2 step (record, or <paramref name="release"/>) was sent to the session at <paramref name="nowMs"/>.</summary>
    public void AwaitSession(ushort packetId, bool release, long nowMs) => (_awaiting ??= [])[packetId] = (release, nowMs);

    /// <summary>The session answered a QoS 2 step: PUBREC once it recorded the id, PUBCOMP once it released it.</summary>
    public Qos2Answer OnSessionAnswer(ushort packetId, bool release)
    {
        if (_awaiting is null || !_awaiting.TryGetValue(packetId, out var awaited) || awaited.Release != release)
        {
            return Qos2Answer.Stale;
        }
        _awaiting.Remove(packetId);
        if (!release)
        {
            _routing?.Remove(packetId);
            (_recorded ??= []).Add(packetId);
            return Qos2Answer.PubRec;
        }
        if (_recorded?.Remove(packetId) == true)
        {
            _unacknowledged--;
        }
        return Qos2Answer.PubComp;
    }

    /// <summary>The QoS 2 steps unanswered for <paramref name="retryMs"/>, to send again (counted as sent now); null when none.</summary>
    public List<(ushort PacketId, bool Release)>? TakeDue(long nowMs, long retryMs)
    {
        if (_awaiting is null)
        {
            return null;
        }
        List<(ushort, bool)>? due = null;
        foreach (var (packetId, (release, sentAt)) in _awaiting)
        {
            if (nowMs - sentAt >= retryMs)
            {
                (due ??= []).Add((packetId, release));
            }
        }
        if (due is not null)
        {
            foreach (var (packetId, release) in due)
            {
                _awaiting[packetId] = (release, nowMs);
            }
        }
        return due;
    }
}
