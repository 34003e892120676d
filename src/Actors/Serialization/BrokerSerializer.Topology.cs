using Akka.Actor;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Topology;

namespace Broker.Actors.Serialization;

/// <summary>Manifests and layouts of the AMQP topology messages and events (manifests start with "T:").</summary>
public sealed partial class BrokerSerializer
{
    private static string? TopologyManifest(object o) => o switch
    {
        DeclareExchange => "T:DE",
        DeleteExchange => "T:XE",
        DeclareQueue => "T:DQ",
        QueueDeclared => "T:QD",
        DeleteQueue => "T:XQ",
        QueueDeleted => "T:QX",
        Bind => "T:B",
        Unbind => "T:U",
        ConnectionGone => "T:CG",
        TopologySyncRequest => "T:SQ",
        TopologyApplied => "T:AP",
        TopologyOk => "T:OK",
        TopologyRefused => "T:NO",
        TopologySnapshot => "T:SS",
        TopologyChanged => "T:C",
        MembersSeen => "T:MS",
        QueueOwnerRecorded => "T:QO",
        TopologyOwnerSnapshot => "T:OS",
        _ => null,
    };

    private bool WriteTopologyMessage(BinaryWriter w, object obj)
    {
        switch (obj)
        {
            case DeclareExchange d:
                WriteExchange(w, d.Definition); w.Write(d.Passive);
                break;
            case DeleteExchange d:
                w.Write(d.Name); w.Write(d.IfUnused);
                break;
            case DeclareQueue d:
                WriteDefinition(w, d.Definition); w.Write(d.Passive); WriteOptRef(w, d.Owner);
                break;
            case QueueDeclared d:
                WriteDefinition(w, d.Definition); w.Write(d.Version);
                break;
            case DeleteQueue d:
                w.Write(d.Name); w.Write(d.IfUnused); w.Write(d.IfEmpty); WriteOpt(w, d.ConnectionId);
                break;
            case QueueDeleted d:
                w.Write(d.Name); w.Write(d.MessageCount); w.Write(d.Version);
                break;
            case Bind b:
                WriteBinding(w, b.Binding); WriteOpt(w, b.ConnectionId);
                break;
            case Unbind u:
                WriteBinding(w, u.Binding);
                break;
            case ConnectionGone c:
                w.Write(c.ConnectionId);
                break;
            case TopologySyncRequest s:
                WriteRef(w, s.Replica); w.Write(s.Version);
                break;
            case TopologyOk ok:
                w.Write(ok.Version);
                break;
            case TopologyApplied a:
                w.Write(a.Version);
                break;
            case TopologyRefused r:
                w.Write(r.ReplyCode); w.Write(r.ReplyText);
                break;
            case TopologySnapshot s:
                WriteTopologySnapshot(w, s);
                break;
            case TopologyChanged c:
                w.Write(c.Version); WriteChange(w, c.Change);
                break;
            case MembersSeen m:
                WriteList(w, m.Uids, (ww, uid) => ww.Write(uid));
                break;
            case QueueOwnerRecorded o:
                w.Write(o.Queue); WriteRef(w, o.Owner);
                break;
            case TopologyOwnerSnapshot s:
                WriteTopologySnapshot(w, s.Topology);
                WriteList(w, s.Owners, (ww, o) => { ww.Write(o.Queue); WriteRef(ww, o.Owner); });
                WriteList(w, s.MembersSeen, (ww, uid) => ww.Write(uid));
                break;
            default:
                return false;
        }
        return true;
    }

    private object? ReadTopologyMessage(BinaryReader r, string manifest) => manifest switch
    {
        "T:DE" => new DeclareExchange(ReadExchange(r), r.ReadBoolean()),
        "T:XE" => new DeleteExchange(r.ReadString(), r.ReadBoolean()),
        "T:DQ" => new DeclareQueue(ReadDefinition(r), r.ReadBoolean(), ReadOptRef(r)),
        "T:QD" => new QueueDeclared(ReadDefinition(r), r.ReadInt64()),
        "T:XQ" => new DeleteQueue(r.ReadString(), r.ReadBoolean(), r.ReadBoolean(), ReadOpt(r)),
        "T:QX" => new QueueDeleted(r.ReadString(), r.ReadUInt32(), r.ReadInt64()),
        "T:B" => new Bind(ReadBinding(r), ReadOpt(r)),
        "T:U" => new Unbind(ReadBinding(r)),
        "T:CG" => new ConnectionGone(r.ReadString()),
        "T:SQ" => new TopologySyncRequest(ReadRef(r), r.ReadInt64()),
        "T:OK" => new TopologyOk(r.ReadInt64()),
        "T:AP" => new TopologyApplied(r.ReadInt64()),
        "T:NO" => new TopologyRefused(r.ReadUInt16(), r.ReadString()),
        "T:SS" => ReadTopologySnapshot(r),
        "T:C" => new TopologyChanged(r.ReadInt64(), ReadChange(r)),
        "T:MS" => new MembersSeen(ReadList(r, rr => rr.ReadInt64()) ?? []),
        "T:QO" => new QueueOwnerRecorded(r.ReadString(), ReadRef(r)),
        "T:OS" => new TopologyOwnerSnapshot(
            ReadTopologySnapshot(r),
            ReadList(r, rr => new QueueOwnerRecorded(rr.ReadString(), ReadRef(rr))) ?? [],
            ReadList(r, rr => rr.ReadInt64())),
        _ => null,
    };

    // ExchangeDefinition: name, kind, then durable (1), auto-delete (2) and internal (4) as one flags byte.
    private static void WriteExchange(BinaryWriter w, ExchangeDefinition x)
    {
        w.Write(x.Name);
        w.Write((byte)x.Kind);
        w.Write((byte)((x.Durable ? 1 : 0) | (x.AutoDelete ? 2 : 0) | (x.Internal ? 4 : 0)));
    }

    private static ExchangeDefinition ReadExchange(BinaryReader r)
    {
        var name = r.ReadString();
        var kind = (ExchangeKind)r.ReadByte();
        var flags = r.ReadByte();
        return new ExchangeDefinition(name, kind, (flags & 1) != 0, (flags & 2) != 0, (flags & 4) != 0);
    }

    private static void WriteBinding(BinaryWriter w, BindingDefinition b)
    {
        w.Write(b.Source); w.Write(b.Destination); w.Write(b.ToExchange); w.Write(b.RoutingKey); WriteBytes(w, b.Arguments);
    }

    private static BindingDefinition ReadBinding(BinaryReader r) =>
        new(r.ReadString(), r.ReadString(), r.ReadBoolean(), r.ReadString(), ReadBytes(r));

    private static void WriteTopologySnapshot(BinaryWriter w, TopologySnapshot s)
    {
        w.Write(s.Version);
        WriteList(w, s.Exchanges, WriteExchange);
        WriteList(w, s.Queues, WriteDefinition);
        WriteList(w, s.Bindings, WriteBinding);
    }

    private static TopologySnapshot ReadTopologySnapshot(BinaryReader r) =>
        new(r.ReadInt64(), ReadList(r, ReadExchange) ?? [], ReadList(r, ReadDefinition) ?? [], ReadList(r, ReadBinding) ?? []);

    // A change: one kind byte, then its fields.
    private static void WriteChange(BinaryWriter w, TopologyChange change)
    {
        switch (change)
        {
            case ExchangeAdded x:
                w.Write((byte)1); WriteExchange(w, x.Exchange);
                break;
            case ExchangeRemoved x:
                w.Write((byte)2); w.Write(x.Name);
                break;
            case QueueAdded q:
                w.Write((byte)3); WriteDefinition(w, q.Queue);
                break;
            case QueueRemoved q:
                w.Write((byte)4); w.Write(q.Name);
                break;
            case BindingAdded b:
                w.Write((byte)5); WriteBinding(w, b.Binding);
                break;
            case BindingRemoved b:
                w.Write((byte)6); WriteBinding(w, b.Binding);
                break;
            default:
                throw new ArgumentException($"BrokerSerializer cannot serialize topology change {change.GetType()}", nameof(change));
        }
    }

    private static TopologyChange ReadChange(BinaryReader r) => r.ReadByte() switch
    {
        1 => new ExchangeAdded(ReadExchange(r)),
        2 => new ExchangeRemoved(r.ReadString()),
        3 => new QueueAdded(ReadDefinition(r)),
        4 => new QueueRemoved(r.ReadString()),
        5 => new BindingAdded(ReadBinding(r)),
        6 => new BindingRemoved(ReadBinding(r)),
        var kind => throw new System.Runtime.Serialization.SerializationException($"unknown topology change kind {kind}"),
    };

    private void WriteOptRef(BinaryWriter w, IActorRef? actorRef)
    {
        w.Write(actorRef is not null);
        if (actorRef is not null)
        {
            WriteRef(w, actorRef);
        }
    }

    private IActorRef? ReadOptRef(BinaryReader r) => r.ReadBoolean() ? ReadRef(r) : null;
}
