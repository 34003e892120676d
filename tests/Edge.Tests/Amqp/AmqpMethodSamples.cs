using Broker.Actors.Amqp.Content;
using Broker.Edge.Amqp;

namespace Broker.Edge.Tests.Amqp;

/// <summary>
/// At least one instance of every method record, with non-default values; methods with several bits come
/// twice with complementary bit patterns so that each bit is seen set and clear.
/// </summary>
internal static class AmqpMethodSamples
{
    private static readonly FieldTable Arguments = FieldTable.Create(
    [
        new("x-match", "all"u8.ToArray()),
        new("x-message-ttl", 60000),
        new("nested", FieldTable.Create([new("list", new object?[] { 1L, null, new AmqpBinary([7]) })])),
    ]);

    public static IReadOnlyList<AmqpMethod> All { get; } =
    [
        new ConnectionStart(0, 9, FieldTable.Create([new("product", "broker"u8.ToArray()), new("capabilities", Arguments)]), "PLAIN AMQPLAIN", "en_US"),
        new ConnectionStartOk(FieldTable.Create([new("product", "client"u8.ToArray())]), "PLAIN", "\0guest\0guest"u8.ToArray(), "en_US"),
        new ConnectionSecure([1, 2, 3]),
        new ConnectionSecureOk([4, 5]),
        new ConnectionTune(2047, 131072, 60),
        new ConnectionTuneOk(1024, 4096, 30),
        new ConnectionOpen("/vhost"),
        ConnectionOpenOk.Instance,
        new ConnectionClose(320, "CONNECTION_FORCED - shutdown", 0, 0),
        new ConnectionClose(540, "NOT_IMPLEMENTED", 60, 200),
        ConnectionCloseOk.Instance,
        new ConnectionBlocked("low on memory"),
        ConnectionUnblocked.Instance,
        new ConnectionUpdateSecret("token"u8.ToArray(), "refresh"),
        ConnectionUpdateSecretOk.Instance,

        ChannelOpen.Instance,
        ChannelOpenOk.Instance,
        new ChannelFlow(true),
        new ChannelFlow(false),
        new ChannelFlowOk(true),
        new ChannelClose(404, "NOT_FOUND - no queue 'q'", 50, 10),
        ChannelCloseOk.Instance,

        new ExchangeDeclare("logs", "topic", true, false, true, false, true, Arguments),
        new ExchangeDeclare("logs", "headers", false, true, false, true, false, FieldTable.Empty),
        ExchangeDeclareOk.Instance,
        new ExchangeDelete("logs", true, false),
        new ExchangeDelete("logs", false, true),
        ExchangeDeleteOk.Instance,
        new ExchangeBind("dest", "src", "a.*", true, Arguments),
        new ExchangeBind("dest", "src", "", false, FieldTable.Empty),
        ExchangeBindOk.Instance,
        new ExchangeUnbind("dest", "src", "#", false, Arguments),
        ExchangeUnbindOk.Instance,

        new QueueDeclare("orders", true, false, true, false, true, Arguments),
        new QueueDeclare("", false, true, false, true, false, FieldTable.Empty),
        new QueueDeclareOk("amq.gen-abc", 12, 3),
        new QueueBind("orders", "amq.topic", "order.#", true, Arguments),
        QueueBindOk.Instance,
        new QueuePurge("orders", true),
        new QueuePurgeOk(42),
        new QueueDelete("orders", true, false, true),
        new QueueDelete("orders", false, true, false),
        new QueueDeleteOk(7),
        new QueueUnbind("orders", "amq.topic", "order.#", Arguments),
        QueueUnbindOk.Instance,

        new BasicQos(0, 250, true),
        BasicQosOk.Instance,
        new BasicConsume("orders", "ctag-1", true, false, true, false, Arguments),
        new BasicConsume("orders", "", false, true, false, true, FieldTable.Empty),
        new BasicConsumeOk("amq.ctag-xyz"),
        new BasicCancel("ctag-1", true),
        new BasicCancelOk("ctag-1"),
        new BasicPublish("amq.direct", "caf\u00e9", true, false),
        new BasicPublish("", "q", false, true),
        new BasicReturn(312, "NO_ROUTE", "amq.direct", "nowhere"),
        new BasicDeliver("ctag-1", ulong.MaxValue, true, "amq.direct", "rk"),
        new BasicGet("orders", true),
        new BasicGetOk(5, false, "", "orders", 99),
        BasicGetEmpty.Instance,
        new BasicAck(1, false),
        new BasicAck(1UL << 40, true),
        new BasicReject(3, true),
        new BasicRecoverAsync(true),
        new BasicRecover(false),
        BasicRecoverOk.Instance,
        new BasicNack(4, true, false),
        new BasicNack(4, false, true),

        new ConfirmSelect(true),
        ConfirmSelectOk.Instance,

        TxSelect.Instance,
        TxSelectOk.Instance,
        TxCommit.Instance,
        TxCommitOk.Instance,
        TxRollback.Instance,
        TxRollbackOk.Instance,
    ];

    public static TheoryData<AmqpMethod> Data()
    {
        var data = new TheoryData<AmqpMethod>();
        foreach (var method in All)
        {
            data.Add(method);
        }
        return data;
    }
}
