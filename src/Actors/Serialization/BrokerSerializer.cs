using System.Collections.Immutable;
using Akka.Actor;
using Akka.Serialization;
using Broker.Actors.Messages;
using Broker.Actors.Retained;
using Broker.Actors.Routing;
using Broker.Actors.Sessions;

namespace Broker.Actors.Serialization;

/// <summary>
/// Binary serializer for everything the broker journals or sends between nodes. Each type has a short
/// fixed manifest; the layout is a compact field-by-field encoding (7-bit length-prefixed UTF-8 strings,
/// a presence byte before optional fields). No CLR type name is ever written. Persisted types also name
/// the journal format in their manifest (BrokerSerializer.Journal.cs).
/// </summary>
public sealed partial class BrokerSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    private readonly int _writeFormat = WriteFormatFrom(system.Settings.Config);

    public override int Identifier => 7301;

    /// <summary>The manifest of <see cref="Sessions.SessionInfo"/>, also stored with sessions at rest in the session catalog.</summary>
    public const string SessionInfoManifest = "SI";

    private static string TypeManifest(object o) => o switch
    {
        Deliver => "D",
        NodeDeliver => "ND",
        DeliverAck => "DA",
        SendPublish => "P",
        ClientAck => "A",
        SendPubRel => "PR",
        Connect => "C",
        ConnectAccepted => "CA",
        ConnectionClosed => "CC",
        SessionTakenOver => "TO",
        SessionMoved => "SM",
        SessionResumed => "SR",
        SessionLost => "SL",
        ResumeSession => "RES",
        RouteUpdate => "RU",
        RouteUpdateAck => "RUA",
        RouteSyncRequest => "RSQ",
        RouteSync => "RSY",
        SubscribeRequest => "S",
        SubscribeDone => "SD",
        UnsubscribeRequest => "U",
        UnsubscribeDone => "UD",
        InboundQos2 => "Q2",
        InboundQos2Done => "Q2D",
        SessionInfo => SessionInfoManifest,
        SessionConnected => "E1",
        SessionDisconnected => "E2",
        WillCleared => "E3",
        SubscriptionAdded => "E4",
        SubscriptionRemoved => "E5",
        MessageQueued => "E6",
        MessageSent => "E7",
        MessageDropped => "E8",
        ClientAcked => "E9",
        InboundQos2Changed => "E10",
        SessionHandedOff => "E11",
        SessionState => "SS",
        StoreRetained => "RS",
        QueryRetained => "RQ",
        RetainedMessages => "RM",
        RetainedRefused => "RF",
        RetainedSet => "R1",
        RetainedRemoved => "R2",
        RetainedSnapshot => "R3",
        ListSessions => "LS",
        SessionsPage => "SP",
        FindSession => "FS",
        SessionNotFound => "NF",
        GetNodeStats => "GNS",
        KickClient => "KC",
        ListFilters => "LF",
        FiltersPage => "FP",
        ListFilterClients => "LFC",
        FilterClientsPage => "FCP",
        ListRetained => "LR",
        RetainedPage => "RP",
        DeleteRetained => "DR",
        RetainedDeleted => "RD",
        KickDone => "KD",
        ClientKicked => "CK",
        NodeStats => "NS",
        SessionProbe => "PB",
        SessionProbeAck => "PBA",
        SessionFlowProbe => "FPS",
        Amqp.QueueFlowProbe => "FPQ",
        RetainedFlowProbe => "FPR",
        FlowAck => "FA",
        _ => QueueManifest(o) ?? TopologyManifest(o) ?? throw new ArgumentException($"BrokerSerializer cannot serialize {o.GetType()}", nameof(o)),
    };

    /// <summary>Whether a message has bytes after those read: a field added at the end of a message older nodes send without it.</summary>
    private static bool More(BinaryReader r) => r.BaseStream.Position < r.BaseStream.Length;

    private static ListSessions ReadListSessions(BinaryReader r)
    {
        var query = new ListSessions(ReadOpt(r), r.ReadString(), (SessionStateFilter)r.ReadByte(), r.ReadInt32());
        if (!More(r))
        {
            return query;
        }
        var hasLevel = r.ReadBoolean();
        var level = r.ReadByte();
        return query with { ProtocolLevel = hasLevel ? level : null, Username = ReadOpt(r) };
    }

    private static NodeStats ReadNodeStats(BinaryReader r)
    {
        var node = r.ReadString();
        var uptime = r.ReadInt64();
        var count = r.ReadInt32();
        if (count is < 0 or > 10_000)
        {
            throw new System.Runtime.Serialization.SerializationException($"node stats with {count} counters");
        }
        var counters = new Dictionary<string, long>(count, StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            counters[r.ReadString()] = r.ReadInt64();
        }
        return new NodeStats(node, uptime, counters);
    }

    public override byte[] ToBinary(object obj)
    {
        using var ms = new MemoryStream(128);
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            Write(w, obj);
        }
        return ms.ToArray();
    }

    private void Write(BinaryWriter w, object obj)
    {
        switch (obj)
        {
            case Deliver d:
                w.Write(d.ClientId); WriteMessage(w, d.Message); w.Write(d.NonShared); WriteList(w, d.SharedFilters, (ww, s) => ww.Write(s)); w.Write(d.Correlation); w.Write(d.Retry);
                break;
            case NodeDeliver n:
                WriteMessage(w, n.Message); w.Write(n.Correlation);
                WriteList(w, n.Targets, (ww, t) => { ww.Write(t.ClientId); ww.Write(t.NonShared); WriteList(ww, t.SharedFilters, (w3, f) => w3.Write(f)); });
                break;
            case DeliverAck a:
                w.Write(a.Correlation); w.Write((byte)a.Target.Kind); w.Write(a.Target.Name);
                break;
            case SessionMoved m:
                w.Write(m.ConnectionId);
                break;
            case SessionHandedOff h:
                WriteState(w, h.State);
                break;
            case SessionResumed m:
                w.Write(m.ConnectionId);
                break;
            case SessionLost m:
                w.Write(m.ConnectionId);
                break;
            case ResumeSession m:
                w.Write(m.ClientId); w.Write(m.ConnectionId); WriteRef(w, m.Connection); w.Write(m.AfterFailure);
                break;
            case RouteUpdate u:
                w.Write(u.Seq); WriteList(w, u.Routes, WriteRoutes);
                break;
            case RouteUpdateAck a:
                w.Write(a.Seq);
                break;
            case RouteSyncRequest:
                break;
            case RouteSync s:
                WriteList(w, s.Routes, WriteRoutes); w.Write(s.Last);
                break;
            case SendPublish p:
                w.Write(p.PacketId); w.Write(p.Qos); w.Write(p.Retain); w.Write(p.Dup); WriteMessage(w, p.Message); WriteList(w, p.SubscriptionIds, (ww, i) => ww.Write(i));
                break;
            case ClientAck a:
                w.Write(a.ClientId); w.Write(a.ConnectionId); w.Write((byte)a.Kind); w.Write(a.PacketId);
                break;
            case SendPubRel p:
                w.Write(p.PacketId);
                break;
            case Connect c:
                w.Write(c.ClientId); w.Write(c.ConnectionId); WriteConnectInfo(w, c.Info); WriteRef(w, c.Connection); w.Write(c.Username);
                break;
            case ConnectAccepted c:
                w.Write(c.ConnectionId); w.Write(c.SessionPresent); WriteList(w, c.PendingInboundQos2, (ww, i) => ww.Write(i));
                break;
            case ConnectionClosed c:
                w.Write(c.ClientId); w.Write(c.ConnectionId); w.Write(c.Graceful); w.Write(c.PublishWill); w.Write(c.NewSessionExpiry.HasValue); w.Write(c.NewSessionExpiry ?? 0);
                break;
            case SessionTakenOver t:
                w.Write(t.ConnectionId);
                break;
            case SubscribeRequest s:
                w.Write(s.ClientId); w.Write(s.ConnectionId); w.Write(s.PacketId); WriteList(w, s.Subscriptions, WriteSubscription);
                break;
            case SubscribeDone s:
                w.Write(s.PacketId); WriteList(w, s.ReasonCodes, (ww, b) => ww.Write(b));
                break;
            case UnsubscribeRequest u:
                w.Write(u.ClientId); w.Write(u.ConnectionId); w.Write(u.PacketId); WriteList(w, u.Filters, (ww, s) => ww.Write(s));
                break;
            case UnsubscribeDone u:
                w.Write(u.PacketId); WriteList(w, u.ReasonCodes, (ww, b) => ww.Write(b));
                break;
            case InboundQos2 q:
                w.Write(q.ClientId); w.Write(q.ConnectionId); w.Write(q.PacketId); w.Write(q.Release);
                break;
            case InboundQos2Done q:
                w.Write(q.PacketId); w.Write(q.Release);
                break;
            case SessionInfo i:
                WriteInfo(w, i);
                break;
            case SessionConnected e:
                WriteConnectInfo(w, e.Info); w.Write(e.EffectiveExpiry);
                break;
            case SessionDisconnected e:
                w.Write(e.AtMs); w.Write(e.EffectiveExpiry); w.Write(e.KeepWill);
                break;
            case WillCleared:
                break;
            case SubscriptionAdded e:
                WriteSubscription(w, e.Subscription);
                break;
            case SubscriptionRemoved e:
                w.Write(e.Filter);
                break;
            case MessageQueued e:
                WriteEntry(w, e.Entry);
                break;
            case MessageSent e:
                w.Write(e.Seq); w.Write(e.PacketId);
                break;
            case MessageDropped e:
                w.Write(e.Seq);
                break;
            case ClientAcked e:
                w.Write((byte)e.Kind); w.Write(e.PacketId);
                break;
            case InboundQos2Changed e:
                w.Write(e.PacketId); w.Write(e.Released);
                break;
            case SessionState s:
                WriteState(w, s);
                break;
            case StoreRetained s:
                WriteMessage(w, s.Message); w.Write(s.Correlation);
                break;
            case QueryRetained q:
                w.Write(q.Filter);
                break;
            case RetainedRefused f:
                w.Write(f.Correlation);
                break;
            case RetainedMessages m:
                w.Write(m.Filter); WriteList(w, m.Messages, WriteMessage); w.Write(m.Last);
                break;
            case RetainedSet e:
                WriteMessage(w, e.Message);
                break;
            case RetainedRemoved e:
                w.Write(e.Topic);
                break;
            case RetainedSnapshot s:
                WriteList(w, s.Messages, WriteMessage);
                break;
            case ListSessions l:
                WriteOpt(w, l.After); w.Write(l.Prefix); w.Write((byte)l.State); w.Write(l.Limit);
                w.Write(l.ProtocolLevel.HasValue); w.Write(l.ProtocolLevel ?? 0); WriteOpt(w, l.Username);
                break;
            case SessionsPage p:
                w.Write(p.Node); WriteList(w, p.Sessions, WriteInfo); w.Write(p.HasMore);
                break;
            case FindSession f:
                w.Write(f.ClientId);
                break;
            case SessionNotFound n:
                w.Write(n.ClientId);
                break;
            case GetNodeStats:
                break;
            case KickClient k:
                w.Write(k.ClientId); w.Write(k.Discard);
                break;
            case ListFilters l:
                WriteOpt(w, l.After); w.Write(l.Prefix); w.Write((byte)l.State); w.Write(l.Limit);
                break;
            case FiltersPage p:
                w.Write(p.Node); WriteList(w, p.Rows, (ww, row) => { ww.Write(row.Filter); ww.Write(row.Subscribers); ww.Write(row.MaxQos); }); w.Write(p.HasMore);
                break;
            case ListFilterClients l:
                w.Write(l.Filter); WriteOpt(w, l.After); w.Write(l.Prefix); w.Write((byte)l.State); w.Write(l.Limit);
                break;
            case FilterClientsPage p:
                w.Write(p.Node); WriteList(w, p.Rows, (ww, row) => { ww.Write(row.ClientId); ww.Write(row.Qos); }); w.Write(p.HasMore);
                break;
            case ListRetained l:
                WriteOpt(w, l.After); w.Write(l.Prefix); w.Write(l.Limit);
                break;
            case RetainedPage p:
                WriteList(w, p.Rows, (ww, row) =>
                {
                    ww.Write(row.Topic); ww.Write(row.Qos); ww.Write(row.PayloadBytes); ww.Write(row.UpdatedAtMs.HasValue);
                    if (row.UpdatedAtMs is { } at)
                    {
                        ww.Write(at);
                    }
                });
                w.Write(p.HasMore);
                break;
            case DeleteRetained d:
                w.Write(d.Topic);
                break;
            case RetainedDeleted d:
                w.Write(d.Topic); w.Write(d.Found);
                break;
            case KickDone k:
                w.Write(k.ClientId); w.Write(k.Found);
                break;
            case ClientKicked k:
                w.Write(k.ConnectionId);
                break;
            case NodeStats n:
                w.Write(n.Node); w.Write(n.UptimeMs); w.Write(n.Counters.Count);
                foreach (var (name, value) in n.Counters)
                {
                    w.Write(name); w.Write(value);
                }
                break;
            case SessionProbe p:
                w.Write(p.ClientId);
                break;
            case SessionProbeAck a:
                w.Write(a.ClientId);
                break;
            case SessionFlowProbe p:
                w.Write(p.ClientId); w.Write(p.Id);
                break;
            case Amqp.QueueFlowProbe p:
                w.Write(p.Queue); w.Write(p.Id);
                break;
            case RetainedFlowProbe p:
                w.Write(p.Id);
                break;
            case FlowAck a:
                w.Write(a.Id);
                break;
            default:
                if (!WriteQueueMessage(w, obj) && !WriteTopologyMessage(w, obj))
                {
                    throw new ArgumentException($"BrokerSerializer cannot serialize {obj.GetType()}", nameof(obj));
                }
                break;
        }
    }

    private object Read(BinaryReader r, string manifest) => manifest switch
    {
        "D" => new Deliver(r.ReadString(), ReadMessage(r), r.ReadBoolean(), ReadList(r, rr => rr.ReadString()), r.ReadInt64(), r.ReadBoolean()),
        "ND" => new NodeDeliver(ReadMessage(r), r.ReadInt64(), ReadList(r, rr => new NodeTarget(rr.ReadString(), rr.ReadBoolean(), ReadList(rr, r3 => r3.ReadString()))) ?? []),
        "DA" => new DeliverAck(r.ReadInt64(), new DeliveryTarget((TargetKind)r.ReadByte(), r.ReadString())),
        "SM" => new SessionMoved(r.ReadString()),
        "E11" => new SessionHandedOff(ReadState(r)),
        "SR" => new SessionResumed(r.ReadString()),
        "SL" => new SessionLost(r.ReadString()),
        "RES" => new ResumeSession(r.ReadString(), r.ReadString(), ReadRef(r), r.BaseStream.Position < r.BaseStream.Length && r.ReadBoolean()),
        "RU" => new RouteUpdate(r.ReadInt64(), ReadList(r, ReadRoutes) ?? []),
        "RUA" => new RouteUpdateAck(r.ReadInt64()),
        "RSQ" => RouteSyncRequest.Instance,
        "RSY" => new RouteSync(ReadList(r, ReadRoutes) ?? [], r.ReadBoolean()),
        "P" => new SendPublish(r.ReadUInt16(), r.ReadByte(), r.ReadBoolean(), r.ReadBoolean(), ReadMessage(r), ReadList(r, rr => rr.ReadUInt32())),
        "A" => new ClientAck(r.ReadString(), r.ReadString(), (AckKind)r.ReadByte(), r.ReadUInt16()),
        "PR" => new SendPubRel(r.ReadUInt16()),
        "C" => new Connect(r.ReadString(), r.ReadString(), ReadConnectInfo(r), ReadRef(r), More(r) ? r.ReadString() : ""),
        "CA" => new ConnectAccepted(r.ReadString(), r.ReadBoolean(), ReadList(r, rr => rr.ReadUInt16()) ?? []),
        "CC" => ReadConnectionClosed(r),
        "TO" => new SessionTakenOver(r.ReadString()),
        "S" => new SubscribeRequest(r.ReadString(), r.ReadString(), r.ReadUInt16(), ReadList(r, ReadSubscription) ?? []),
        "SD" => new SubscribeDone(r.ReadUInt16(), ReadList(r, rr => rr.ReadByte()) ?? []),
        "U" => new UnsubscribeRequest(r.ReadString(), r.ReadString(), r.ReadUInt16(), ReadList(r, rr => rr.ReadString()) ?? []),
        "UD" => new UnsubscribeDone(r.ReadUInt16(), ReadList(r, rr => rr.ReadByte()) ?? []),
        "Q2" => new InboundQos2(r.ReadString(), r.ReadString(), r.ReadUInt16(), r.ReadBoolean()),
        "Q2D" => new InboundQos2Done(r.ReadUInt16(), r.ReadBoolean()),
        "SI" => ReadInfo(r),
        "E1" => new SessionConnected(ReadConnectInfo(r), r.ReadUInt32()),
        "E2" => new SessionDisconnected(r.ReadInt64(), r.ReadUInt32(), r.ReadBoolean()),
        "E3" => WillCleared.Instance,
        "E4" => new SubscriptionAdded(ReadSubscription(r)),
        "E5" => new SubscriptionRemoved(r.ReadString()),
        "E6" => new MessageQueued(ReadEntry(r)),
        "E7" => new MessageSent(r.ReadInt64(), r.ReadUInt16()),
        "E8" => new MessageDropped(r.ReadInt64()),
        "E9" => new ClientAcked((AckKind)r.ReadByte(), r.ReadUInt16()),
        "E10" => new InboundQos2Changed(r.ReadUInt16(), r.ReadBoolean()),
        "SS" => ReadState(r),
        "RS" => new StoreRetained(ReadMessage(r), r.ReadInt64()),
        "RQ" => new QueryRetained(r.ReadString()),
        "RF" => new RetainedRefused(r.ReadInt64()),
        "RM" => new RetainedMessages(r.ReadString(), ReadList(r, ReadMessage) ?? [], r.ReadBoolean()),
        "R1" => new RetainedSet(ReadMessage(r)),
        "R2" => new RetainedRemoved(r.ReadString()),
        "R3" => new RetainedSnapshot(ReadList(r, ReadMessage) ?? []),
        "LS" => ReadListSessions(r),
        "SP" => new SessionsPage(r.ReadString(), ReadList(r, ReadInfo) ?? [], r.ReadBoolean()),
        "FS" => new FindSession(r.ReadString()),
        "NF" => new SessionNotFound(r.ReadString()),
        "GNS" => GetNodeStats.Instance,
        "KC" => new KickClient(r.ReadString(), r.ReadBoolean()),
        "LF" => new ListFilters(ReadOpt(r), r.ReadString(), (SessionStateFilter)r.ReadByte(), r.ReadInt32()),
        "FP" => new FiltersPage(r.ReadString(), ReadList(r, rr => new FilterRow(rr.ReadString(), rr.ReadInt32(), rr.ReadByte())) ?? [], r.ReadBoolean()),
        "LFC" => new ListFilterClients(r.ReadString(), ReadOpt(r), r.ReadString(), (SessionStateFilter)r.ReadByte(), r.ReadInt32()),
        "FCP" => new FilterClientsPage(r.ReadString(), ReadList(r, rr => new FilterClient(rr.ReadString(), rr.ReadByte())) ?? [], r.ReadBoolean()),
        "LR" => new ListRetained(ReadOpt(r), r.ReadString(), r.ReadInt32()),
        "RP" => new RetainedPage(ReadList(r, rr => new RetainedRow(rr.ReadString(), rr.ReadByte(), rr.ReadInt32(), rr.ReadBoolean() ? rr.ReadInt64() : null)) ?? [], r.ReadBoolean()),
        "DR" => new DeleteRetained(r.ReadString()),
        "RD" => new RetainedDeleted(r.ReadString(), r.ReadBoolean()),
        "KD" => new KickDone(r.ReadString(), r.ReadBoolean()),
        "CK" => new ClientKicked(r.ReadString()),
        "NS" => ReadNodeStats(r),
        "PB" => new SessionProbe(r.ReadString()),
        "PBA" => new SessionProbeAck(r.ReadString()),
        "FPS" => new SessionFlowProbe(r.ReadString(), r.ReadInt64()),
        "FPQ" => new Amqp.QueueFlowProbe(r.ReadString(), r.ReadInt64()),
        "FPR" => new RetainedFlowProbe(r.ReadInt64()),
        "FA" => new FlowAck(r.ReadInt64()),
        _ => ReadQueueMessage(r, manifest) ?? ReadTopologyMessage(r, manifest) ?? throw new System.Runtime.Serialization.SerializationException($"unknown manifest '{manifest}'"),
    };

    private static ConnectionClosed ReadConnectionClosed(BinaryReader r)
    {
        var clientId = r.ReadString();
        var connectionId = r.ReadString();
        var graceful = r.ReadBoolean();
        var publishWill = r.ReadBoolean();
        var hasExpiry = r.ReadBoolean();
        var expiry = r.ReadUInt32();
        return new ConnectionClosed(clientId, connectionId, graceful, publishWill, hasExpiry ? expiry : null);
    }

    // ---- shared pieces ----

    private static void WriteOpt(BinaryWriter w, string? s)
    {
        w.Write(s is not null);
        if (s is not null)
        {
            w.Write(s);
        }
    }

    private static string? ReadOpt(BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;

    private static void WriteBytes(BinaryWriter w, ReadOnlySpan<byte> b)
    {
        w.Write7BitEncodedInt(b.Length);
        w.Write(b);
    }

    private static byte[] ReadBytes(BinaryReader r) => r.ReadBytes(r.Read7BitEncodedInt());

    private static void WriteList<T>(BinaryWriter w, IReadOnlyList<T>? list, Action<BinaryWriter, T> item)
    {
        if (list is null)
        {
            w.Write7BitEncodedInt(-1);
            return;
        }
        w.Write7BitEncodedInt(list.Count);
        foreach (var x in list)
        {
            item(w, x);
        }
    }

    private static List<T>? ReadList<T>(BinaryReader r, Func<BinaryReader, T> item)
    {
        var n = r.Read7BitEncodedInt();
        if (n < 0)
        {
            return null;
        }
        var list = new List<T>(Math.Min(n, 1024));
        for (var i = 0; i < n; i++)
        {
            list.Add(item(r));
        }
        return list;
    }

    // PublishedMessage: topic, payload, qos, retain, then a flags byte saying which optional fields follow.
    private static void WriteMessage(BinaryWriter w, PublishedMessage m)
    {
        w.Write(m.Topic);
        WriteBytes(w, m.Payload);
        w.Write(m.Qos);
        w.Write(m.Retain);
        var flags = (m.ContentType is null ? 0 : 1) | (m.ResponseTopic is null ? 0 : 2) | (m.CorrelationData is null ? 0 : 4)
            | (m.ExpiresAtUnixMs == 0 ? 0 : 8) | (m.UserProperties is null ? 0 : 16) | (m.OriginClientId is null ? 0 : 32) | (m.Id == 0 ? 0 : 64);
        w.Write((byte)flags);
        w.Write(m.PayloadFormat);
        if (m.ContentType is not null) w.Write(m.ContentType);
        if (m.ResponseTopic is not null) w.Write(m.ResponseTopic);
        if (m.CorrelationData is not null) WriteBytes(w, m.CorrelationData);
        if (m.ExpiresAtUnixMs != 0) w.Write(m.ExpiresAtUnixMs);
        if (m.UserProperties is not null) WriteList(w, m.UserProperties, (ww, p) => { ww.Write(p.Name); ww.Write(p.Value); });
        if (m.OriginClientId is not null) w.Write(m.OriginClientId);
        if (m.Id != 0) w.Write(m.Id);
    }

    private static PublishedMessage ReadMessage(BinaryReader r)
    {
        var topic = r.ReadString();
        var payload = ReadBytes(r);
        var qos = r.ReadByte();
        var retain = r.ReadBoolean();
        var flags = r.ReadByte();
        var format = r.ReadByte();
        var contentType = (flags & 1) != 0 ? r.ReadString() : null;
        var responseTopic = (flags & 2) != 0 ? r.ReadString() : null;
        var correlation = (flags & 4) != 0 ? ReadBytes(r) : null;
        var expires = (flags & 8) != 0 ? r.ReadInt64() : 0;
        var props = (flags & 16) != 0 ? ReadList(r, rr => new UserProperty(rr.ReadString(), rr.ReadString())) : null;
        var origin = (flags & 32) != 0 ? r.ReadString() : null;
        var id = (flags & 64) != 0 ? r.ReadInt64() : 0;
        return new PublishedMessage(topic, payload, qos, retain, contentType, responseTopic, correlation, format, expires, props, origin, id);
    }

    private static void WriteSubscription(BinaryWriter w, Subscription s)
    {
        w.Write(s.Filter); w.Write(s.Qos); w.Write(s.NoLocal); w.Write(s.RetainAsPublished); w.Write(s.RetainHandling); w.Write(s.SubscriptionId);
    }

    private static Subscription ReadSubscription(BinaryReader r) =>
        new(r.ReadString(), r.ReadByte(), r.ReadBoolean(), r.ReadBoolean(), r.ReadByte(), r.ReadUInt32());

    private static void WriteConnectInfo(BinaryWriter w, ConnectInfo c)
    {
        w.Write(c.ProtocolLevel); w.Write(c.CleanStart); w.Write(c.SessionExpiry); w.Write(c.ReceiveMaximum); w.Write(c.MaxPacketSize);
        w.Write(c.TopicAliasMax); w.Write(c.RequestResponse); w.Write(c.RequestProblem); w.Write(c.ConnectedAtMs);
        WriteWill(w, c.Will);
    }

    private static ConnectInfo ReadConnectInfo(BinaryReader r) => new(
        r.ReadByte(), r.ReadBoolean(), r.ReadUInt32(), r.ReadUInt16(), r.ReadUInt32(), r.ReadUInt16(), r.ReadBoolean(), r.ReadBoolean(),
        ConnectedAtMs: r.ReadInt64(), Will: ReadWill(r));

    private static void WriteWill(BinaryWriter w, WillMessage? will)
    {
        w.Write(will is not null);
        if (will is not null)
        {
            WriteMessage(w, will.Message); w.Write(will.DelaySeconds); w.Write(will.ExpirySeconds);
        }
    }

    private static WillMessage? ReadWill(BinaryReader r) => r.ReadBoolean() ? new WillMessage(ReadMessage(r), r.ReadUInt32(), r.ReadUInt32()) : null;

    private static void WriteEntry(BinaryWriter w, OutboundEntry e)
    {
        w.Write(e.Seq); WriteMessage(w, e.Message); w.Write(e.Qos); w.Write(e.Retain); WriteList(w, e.SubscriptionIds, (ww, i) => ww.Write(i));
    }

    private static OutboundEntry ReadEntry(BinaryReader r) =>
        new(r.ReadInt64(), ReadMessage(r), r.ReadByte(), r.ReadBoolean(), ReadList(r, rr => rr.ReadUInt32()));

    private static void WriteInfo(BinaryWriter w, SessionInfo i)
    {
        w.Write(i.ClientId); w.Write(i.Connected); w.Write(i.ProtocolLevel); w.Write(i.CleanStart); w.Write(i.ExpiryInterval);
        w.Write(i.ConnectedAtMs ?? -1); w.Write(i.DisconnectedAtMs ?? -1); w.Write(i.ReceiveMaximum); w.Write(i.MaxPacketSize);
        w.Write(i.TopicAliasMax); w.Write(i.RequestResponse); w.Write(i.RequestProblem); w.Write(i.HasWill); w.Write(i.InflightCount);
        w.Write(i.OfflineQueueDepth); WriteList(w, i.Subscriptions, WriteSubscription); w.Write(i.Node); w.Write(i.ConnectionName);
    }

    private static SessionInfo ReadInfo(BinaryReader r)
    {
        var clientId = r.ReadString();
        var connected = r.ReadBoolean();
        var level = r.ReadByte();
        var clean = r.ReadBoolean();
        var expiry = r.ReadUInt32();
        var connectedAt = r.ReadInt64();
        var disconnectedAt = r.ReadInt64();
        return new SessionInfo(clientId, connected, level, clean, expiry,
            connectedAt < 0 ? null : connectedAt, disconnectedAt < 0 ? null : disconnectedAt,
            r.ReadUInt16(), r.ReadUInt32(), r.ReadUInt16(), r.ReadBoolean(), r.ReadBoolean(), r.ReadBoolean(), r.ReadInt32(), r.ReadInt32(),
            ReadList(r, ReadSubscription) ?? [], r.ReadString(), r.ReadString());
    }

    private static void WriteState(BinaryWriter w, SessionState s)
    {
        w.Write(s.ClientId); w.Write(s.Exists); w.Write(s.Connected);
        w.Write(s.LastConnect is not null);
        if (s.LastConnect is not null)
        {
            WriteConnectInfo(w, s.LastConnect);
        }
        WriteWill(w, s.Will);
        w.Write(s.EffectiveExpiry); w.Write(s.DisconnectedAtMs ?? -1);
        WriteList(w, [.. s.Subscriptions.Values], WriteSubscription);
        WriteList(w, [.. s.Queue], WriteEntry);
        WriteList(w, [.. s.Inflight.Values.OrderBy(i => i.Entry.Seq)], (ww, i) => { ww.Write(i.PacketId); WriteEntry(ww, i.Entry); ww.Write((byte)i.Stage); });
        WriteList(w, [.. s.InboundQos2], (ww, i) => ww.Write(i));
        w.Write(s.NextSeq); w.Write(s.LastPacketId);
    }

    private static SessionState ReadState(BinaryReader r)
    {
        var clientId = r.ReadString();
        var exists = r.ReadBoolean();
        var connected = r.ReadBoolean();
        var last = r.ReadBoolean() ? ReadConnectInfo(r) : null;
        var will = ReadWill(r);
        var expiry = r.ReadUInt32();
        var disconnectedAt = r.ReadInt64();
        var subs = ReadList(r, ReadSubscription) ?? [];
        var queue = ReadList(r, ReadEntry) ?? [];
        var inflight = ReadList(r, rr => new InflightEntry(rr.ReadUInt16(), ReadEntry(rr), (InflightStage)rr.ReadByte())) ?? [];
        var inbound = ReadList(r, rr => rr.ReadUInt16()) ?? [];
        return new SessionState
        {
            ClientId = clientId,
            Exists = exists,
            Connected = connected,
            LastConnect = last,
            Will = will,
            EffectiveExpiry = expiry,
            DisconnectedAtMs = disconnectedAt < 0 ? null : disconnectedAt,
            Subscriptions = subs.ToImmutableSortedDictionary(s => s.Filter, s => s, StringComparer.Ordinal),
            Queue = ImmutableQueue.CreateRange(queue),
            QueueCount = queue.Count,
            Inflight = inflight.ToImmutableDictionary(i => i.PacketId),
            InboundQos2 = [.. inbound],
            NextSeq = r.ReadInt64(),
            LastPacketId = r.ReadUInt16(),
        };
    }

    private static void WriteRoutes(BinaryWriter w, ClientRoutes routes)
    {
        w.Write(routes.ClientId); w.Write(routes.Version);
        WriteList(w, routes.Entries, (ww, e) => { ww.Write(e.Filter); ww.Write(e.Connected); });
    }

    private static ClientRoutes ReadRoutes(BinaryReader r) =>
        new(r.ReadString(), r.ReadInt64(), ReadList(r, rr => new RouteEntry(rr.ReadString(), rr.ReadBoolean()))?.ToArray() ?? []);

    private void WriteRef(BinaryWriter w, IActorRef actorRef) => w.Write(Akka.Serialization.Serialization.SerializedActorPath(actorRef));

    private IActorRef ReadRef(BinaryReader r) => system.Provider.ResolveActorRef(r.ReadString());
}
