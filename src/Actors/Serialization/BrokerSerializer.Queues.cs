using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Queues;

namespace Broker.Actors.Serialization;

/// <summary>Manifests and layouts of the AMQP queue messages and events (manifests start with "Q:").</summary>
public sealed partial class BrokerSerializer
{
    private static string? QueueManifest(object o) => o switch
    {
        EnsureQueue => "Q:A",
        QueueReady => "Q:B",
        Consume => "Q:C",
        QueueDelivery => "Q:D",
        EnqueueRejected => "Q:RJ",
        Enqueue => "Q:E",
        Enqueued => "Q:F",
        GetMessage => "Q:G",
        GetEmpty => "Q:H",
        GetQueueStats => "Q:I",
        QueueStats => "Q:J",
        ConsumerCredit => "Q:K",
        ChannelClosed => "Q:L",
        ConnectionDrained => "Q:CD",
        QueueMissing => "Q:M",
        ConsumerCancelled => "Q:N",
        ConsumeOk => "Q:O",
        PurgeQueue => "Q:P",
        QueuePurged => "Q:Q",
        ConsumeRefused => "Q:R",
        SettleMessages => "Q:S",
        ConsumerMoved => "Q:T",
        QueueUnused => "Q:U",
        QueueDeleteRefused => "Q:V",
        QueueContentDeleted => "Q:W",
        CancelConsumer => "Q:X",
        CancelOk => "Q:Y",
        DeleteQueueContent => "Q:Z",
        QueueInitialized => "Q:1",
        MessagesEnqueued => "Q:2",
        MessagesRemoved => "Q:3",
        QueueDestroyed => "Q:4",
        QueueSnapshot => "Q:5",
        _ => null,
    };

    private bool WriteQueueMessage(BinaryWriter w, object obj)
    {
        switch (obj)
        {
            case EnsureQueue e:
                WriteDefinition(w, e.Definition);
                break;
            case QueueReady r:
                w.Write(r.Queue); w.Write(r.MessageCount); w.Write(r.ConsumerCount);
                break;
            case Consume c:
                w.Write(c.Queue); WriteChannel(w, c.Channel); w.Write(c.ConsumerTag); w.Write(c.NoAck); w.Write(c.Prefetch); w.Write(c.Exclusive); WriteOpt(w, c.ConnectionId);
                break;
            case QueueDelivery d:
                w.Write(d.Queue); w.Write(d.Channel); WriteOpt(w, d.ConsumerTag); w.Write(d.Sequence); w.Write(d.Redelivered); WriteAmqpMessage(w, d.Message); w.Write(d.MessageCount);
                w.Write(d.Entity is not null);
                if (d.Entity is not null)
                {
                    WriteRef(w, d.Entity);
                }
                break;
            case Enqueue e:
                w.Write(e.Queue); WriteAmqpMessage(w, e.Message); w.Write(e.Confirm);
                break;
            case Enqueued e:
                w.Write(e.Queue); w.Write(e.MessageId);
                break;
            case EnqueueRejected e:
                w.Write(e.Queue); w.Write(e.MessageId);
                break;
            case GetMessage g:
                w.Write(g.Queue); WriteChannel(w, g.Channel); w.Write(g.NoAck);
                break;
            case GetEmpty g:
                w.Write(g.Queue); w.Write(g.Channel);
                break;
            case ConsumerCredit c:
                w.Write(c.Queue); WriteChannel(w, c.Channel); w.Write(c.ConsumerTag); w.Write(c.Credit);
                break;
            case ChannelClosed c:
                w.Write(c.Queue); WriteChannel(w, c.Channel);
                break;
            case ConnectionDrained d:
                w.Write(d.Queue); WriteRef(w, d.Connection);
                break;
            case QueueMissing m:
                w.Write(m.Queue); w.Write(m.MessageId);
                break;
            case ConsumerCancelled c:
                w.Write(c.Queue); w.Write(c.Channel); w.Write(c.ConsumerTag);
                break;
            case ConsumeOk c:
                w.Write(c.Queue); w.Write(c.Channel); w.Write(c.ConsumerTag);
                break;
            case PurgeQueue p:
                w.Write(p.Queue);
                break;
            case GetQueueStats g:
                w.Write(g.Queue);
                break;
            case QueueStats q:
                w.Write(q.Queue); w.Write(q.Ready); w.Write(q.Unacked); w.Write(q.Consumers); w.Write(q.Node);
                break;
            case QueuePurged p:
                w.Write(p.Queue); w.Write(p.MessageCount);
                break;
            case ConsumeRefused r:
                w.Write(r.Queue); w.Write(r.Channel); w.Write(r.ConsumerTag); w.Write(r.ReplyCode); w.Write(r.ReplyText);
                break;
            case SettleMessages s:
                w.Write(s.Queue); WriteChannel(w, s.Channel); WriteSequences(w, s.Sequences); w.Write((byte)s.Settlement);
                break;
            case ConsumerMoved m:
                w.Write(m.Queue); w.Write(m.Channel); w.Write(m.ConsumerTag);
                break;
            case QueueUnused u:
                w.Write(u.Queue);
                break;
            case QueueDeleteRefused r:
                w.Write(r.Queue); w.Write(r.ReplyText);
                break;
            case QueueContentDeleted d:
                w.Write(d.Queue); w.Write(d.MessageCount);
                break;
            case CancelConsumer c:
                w.Write(c.Queue); WriteChannel(w, c.Channel); w.Write(c.ConsumerTag);
                break;
            case CancelOk c:
                w.Write(c.Queue); w.Write(c.Channel); w.Write(c.ConsumerTag);
                break;
            case DeleteQueueContent d:
                w.Write(d.Queue); w.Write(d.IfUnused); w.Write(d.IfEmpty);
                break;
            case QueueInitialized e:
                WriteDefinition(w, e.Definition);
                break;
            case MessagesEnqueued e:
                WriteList(w, e.Messages, WriteEnqueued);
                break;
            case MessagesRemoved e:
                WriteSequences(w, e.Sequences);
                break;
            case QueueDestroyed:
                break;
            case QueueSnapshot s:
                WriteDefinition(w, s.Definition); w.Write(s.NextSequence); WriteList(w, s.Messages, WriteEnqueued); WriteList(w, s.RecentIds, (ww, id) => ww.Write(id));
                break;
            default:
                return false;
        }
        return true;
    }

    private object? ReadQueueMessage(BinaryReader r, string manifest) => manifest switch
    {
        "Q:A" => new EnsureQueue(ReadDefinition(r)),
        "Q:B" => new QueueReady(r.ReadString(), r.ReadUInt32(), r.ReadUInt32()),
        "Q:C" => new Consume(r.ReadString(), ReadChannel(r), r.ReadString(), r.ReadBoolean(), r.ReadUInt16(), r.ReadBoolean(), ReadOpt(r)),
        "Q:D" => new QueueDelivery(r.ReadString(), r.ReadUInt16(), ReadOpt(r), r.ReadInt64(), r.ReadBoolean(), ReadAmqpMessage(r), r.ReadUInt32(), r.ReadBoolean() ? ReadRef(r) : null),
        "Q:E" => new Enqueue(r.ReadString(), ReadAmqpMessage(r), r.ReadBoolean()),
        "Q:F" => new Enqueued(r.ReadString(), r.ReadInt64()),
        "Q:G" => new GetMessage(r.ReadString(), ReadChannel(r), r.ReadBoolean()),
        "Q:H" => new GetEmpty(r.ReadString(), r.ReadUInt16()),
        "Q:I" => new GetQueueStats(r.ReadString()),
        "Q:J" => new QueueStats(r.ReadString(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadString()),
        "Q:K" => new ConsumerCredit(r.ReadString(), ReadChannel(r), r.ReadString(), r.ReadInt32()),
        "Q:L" => new ChannelClosed(r.ReadString(), ReadChannel(r)),
        "Q:CD" => new ConnectionDrained(r.ReadString(), ReadRef(r)),
        "Q:M" => new QueueMissing(r.ReadString(), r.ReadInt64()),
        "Q:RJ" => new EnqueueRejected(r.ReadString(), r.ReadInt64()),
        "Q:N" => new ConsumerCancelled(r.ReadString(), r.ReadUInt16(), r.ReadString()),
        "Q:O" => new ConsumeOk(r.ReadString(), r.ReadUInt16(), r.ReadString()),
        "Q:P" => new PurgeQueue(r.ReadString()),
        "Q:Q" => new QueuePurged(r.ReadString(), r.ReadUInt32()),
        "Q:R" => new ConsumeRefused(r.ReadString(), r.ReadUInt16(), r.ReadString(), r.ReadUInt16(), r.ReadString()),
        "Q:S" => new SettleMessages(r.ReadString(), ReadChannel(r), ReadSequences(r), (Settlement)r.ReadByte()),
        "Q:T" => new ConsumerMoved(r.ReadString(), r.ReadUInt16(), r.ReadString()),
        "Q:U" => new QueueUnused(r.ReadString()),
        "Q:V" => new QueueDeleteRefused(r.ReadString(), r.ReadString()),
        "Q:W" => new QueueContentDeleted(r.ReadString(), r.ReadUInt32()),
        "Q:X" => new CancelConsumer(r.ReadString(), ReadChannel(r), r.ReadString()),
        "Q:Y" => new CancelOk(r.ReadString(), r.ReadUInt16(), r.ReadString()),
        "Q:Z" => new DeleteQueueContent(r.ReadString(), r.ReadBoolean(), r.ReadBoolean()),
        "Q:1" => new QueueInitialized(ReadDefinition(r)),
        "Q:2" => new MessagesEnqueued([.. ReadList(r, ReadEnqueued) ?? []]),
        "Q:3" => new MessagesRemoved(ReadSequences(r)),
        "Q:4" => QueueDestroyed.Instance,
        "Q:5" => new QueueSnapshot(ReadDefinition(r), r.ReadInt64(), ReadList(r, ReadEnqueued) ?? [], ReadList(r, rr => rr.ReadInt64()) ?? []),
        _ => null,
    };

    private void WriteChannel(BinaryWriter w, ChannelRef channel)
    {
        WriteRef(w, channel.Connection);
        w.Write(channel.Channel);
    }

    private ChannelRef ReadChannel(BinaryReader r) => new(ReadRef(r), r.ReadUInt16());

    // AmqpMessage: exchange, routing key, the content header's property bytes, body, then a flags byte
    // (1 persistent, 2 expiry follows, 4 id follows) and the optional fields it announces.
    private static void WriteAmqpMessage(BinaryWriter w, AmqpMessage m)
    {
        w.Write(m.Exchange);
        w.Write(m.RoutingKey);
        WriteBytes(w, m.Properties);
        WriteBytes(w, m.Body);
        var flags = (m.Persistent ? 1 : 0) | (m.ExpiresAtUnixMs == 0 ? 0 : 2) | (m.Id == 0 ? 0 : 4);
        w.Write((byte)flags);
        if (m.ExpiresAtUnixMs != 0) w.Write(m.ExpiresAtUnixMs);
        if (m.Id != 0) w.Write(m.Id);
    }

    private static AmqpMessage ReadAmqpMessage(BinaryReader r)
    {
        var exchange = r.ReadString();
        var routingKey = r.ReadString();
        var properties = ReadBytes(r);
        var body = ReadBytes(r);
        var flags = r.ReadByte();
        var expires = (flags & 2) != 0 ? r.ReadInt64() : 0;
        var id = (flags & 4) != 0 ? r.ReadInt64() : 0;
        return new AmqpMessage(exchange, routingKey, properties, body, (flags & 1) != 0, expires, id);
    }

    // QueueDefinition (shared by queue and topology messages): name, a flags byte (1 durable, 2 auto-delete, 4 exclusive owner follows), then the
    // arguments: a flags byte (1 TTL, 2 expires, 4 max length, 8 DLX, 16 DLX routing key, 32 overflow reject-publish,
    // 64 overflow reject-publish-dlx; neither = drop-head) and the values present.
    private static void WriteDefinition(BinaryWriter w, QueueDefinition d)
    {
        w.Write(d.Name);
        w.Write((byte)((d.Durable ? 1 : 0) | (d.AutoDelete ? 2 : 0) | (d.ExclusiveOwner is null ? 0 : 4)));
        if (d.ExclusiveOwner is not null) w.Write(d.ExclusiveOwner);
        var a = d.Arguments;
        w.Write((byte)((a.MessageTtlMs is null ? 0 : 1) | (a.ExpiresMs is null ? 0 : 2) | (a.MaxLength is null ? 0 : 4)
            | (a.DeadLetterExchange is null ? 0 : 8) | (a.DeadLetterRoutingKey is null ? 0 : 16)
            | (a.Overflow == QueueOverflow.RejectPublish ? 32 : 0) | (a.Overflow == QueueOverflow.RejectPublishDlx ? 64 : 0)));
        if (a.MessageTtlMs is { } ttl) w.Write(ttl);
        if (a.ExpiresMs is { } expires) w.Write(expires);
        if (a.MaxLength is { } max) w.Write(max);
        if (a.DeadLetterExchange is not null) w.Write(a.DeadLetterExchange);
        if (a.DeadLetterRoutingKey is not null) w.Write(a.DeadLetterRoutingKey);
    }

    private static QueueDefinition ReadDefinition(BinaryReader r)
    {
        var name = r.ReadString();
        var flags = r.ReadByte();
        var owner = (flags & 4) != 0 ? r.ReadString() : null;
        var a = r.ReadByte();
        var arguments = new QueueArguments(
            (a & 1) != 0 ? r.ReadInt64() : null,
            (a & 2) != 0 ? r.ReadInt64() : null,
            (a & 4) != 0 ? r.ReadInt64() : null,
            (a & 8) != 0 ? r.ReadString() : null,
            (a & 16) != 0 ? r.ReadString() : null,
            (a & 64) != 0 ? QueueOverflow.RejectPublishDlx : (a & 32) != 0 ? QueueOverflow.RejectPublish : QueueOverflow.DropHead);
        return new QueueDefinition(name, (flags & 1) != 0, (flags & 2) != 0, owner, arguments);
    }

    private static void WriteEnqueued(BinaryWriter w, MessageEnqueued e)
    {
        w.Write(e.Sequence); w.Write(e.EnqueuedAtUnixMs); WriteAmqpMessage(w, e.Message);
    }

    private static MessageEnqueued ReadEnqueued(BinaryReader r) => new(r.ReadInt64(), r.ReadInt64(), ReadAmqpMessage(r));

    // Sequences: a count, then each as a zigzag 7-bit delta from the previous one (mostly ascending and close
    // together, so an acknowledgement of a thousand messages takes about a thousand bytes).
    private static void WriteSequences(BinaryWriter w, long[] sequences)
    {
        w.Write7BitEncodedInt(sequences.Length);
        var previous = 0L;
        foreach (var s in sequences)
        {
            var delta = s - previous;
            w.Write7BitEncodedInt64((delta << 1) ^ (delta >> 63));
            previous = s;
        }
    }

    private static long[] ReadSequences(BinaryReader r)
    {
        var n = r.Read7BitEncodedInt();
        // Every sequence takes at least a byte: a corrupt count must not allocate wildly.
        if (n < 0 || n > r.BaseStream.Length - r.BaseStream.Position)
        {
            throw new System.Runtime.Serialization.SerializationException($"bad sequence count {n}");
        }
        var sequences = new long[n];
        var previous = 0L;
        for (var i = 0; i < n; i++)
        {
            var zigzag = r.Read7BitEncodedInt64();
            previous += (long)((ulong)zigzag >> 1) ^ -(zigzag & 1);
            sequences[i] = previous;
        }
        return sequences;
    }
}
