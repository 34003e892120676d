using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Broker.Actors.Amqp.Content;
using Broker.Edge.Amqp;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using BasicProperties = Broker.Actors.Amqp.Content.BasicProperties;
using Client = RabbitMQ.Client;
using QueueDeclareOk = Broker.Edge.Amqp.QueueDeclareOk;

namespace Broker.Edge.Tests.Amqp;

/// <summary>
/// RabbitMQ.Client against a scripted peer built from the codec alone, on loopback: what the client encodes
/// must decode here, and what is encoded here the client must accept. No broker logic is involved.
/// </summary>
public sealed class RabbitMqClientInteropTests
{
    private const uint FrameMax = 4096;

    /// <summary>What the scripted peer received, in order.</summary>
    private sealed class Transcript
    {
        public List<AmqpMethod> Methods { get; } = [];
        public byte[]? PublishedProperties { get; set; }
        public byte[]? PublishedBody { get; set; }
    }

    [Fact]
    public async Task Handshake_declare_bind_publish_consume_ack_and_close()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            var transcript = new Transcript();
            var peer = ServeOneConnectionAsync(listener, transcript, cts.Token);

            var body = Enumerable.Range(0, 10_000).Select(i => (byte)i).ToArray();
            var sent = new Client.BasicProperties
            {
                ContentType = "application/octet-stream",
                ContentEncoding = "identity",
                Headers = new Dictionary<string, object?>
                {
                    ["s"] = "text",
                    ["i"] = 42,
                    ["l"] = 7L,
                    ["b"] = true,
                    ["nested"] = new Dictionary<string, object?> { ["x"] = 1 },
                    ["list"] = new List<object?> { 1, "a" },
                },
                DeliveryMode = Client.DeliveryModes.Persistent,
                Priority = 5,
                CorrelationId = "corr",
                ReplyTo = "replies",
                Expiration = "60000",
                MessageId = "m-1",
                Timestamp = new Client.AmqpTimestamp(1700000000),
                Type = "order",
                UserId = "guest",
                AppId = "tests",
                ClusterId = "c1",
            };

            var factory = new Client.ConnectionFactory
            {
                Endpoint = new Client.AmqpTcpEndpoint("127.0.0.1", port),
                AutomaticRecoveryEnabled = false,
                TopologyRecoveryEnabled = false,
                RequestedHeartbeat = TimeSpan.Zero,
            };
            BasicDeliverEventArgs? delivery = null;
            byte[]? deliveredBody = null;
            var acked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            await using (var connection = await factory.CreateConnectionAsync(cts.Token))
            {
                await using var channel = await connection.CreateChannelAsync(cancellationToken: cts.Token);
                var declared = await channel.QueueDeclareAsync("q", durable: true, exclusive: false, autoDelete: false,
                    arguments: new Dictionary<string, object?> { ["x-message-ttl"] = 60000 }, cancellationToken: cts.Token);
                await channel.QueueBindAsync("q", "amq.headers", "", new Dictionary<string, object?> { ["x-match"] = "any", ["k"] = 1 }, cancellationToken: cts.Token);
                await channel.BasicPublishAsync("amq.direct", "rk", mandatory: true, basicProperties: sent, body: body, cancellationToken: cts.Token);

                var consumer = new AsyncEventingBasicConsumer(channel);
                consumer.ReceivedAsync += async (_, e) =>
                {
                    delivery = e;
                    deliveredBody = e.Body.ToArray();
                    await channel.BasicAckAsync(e.DeliveryTag, multiple: false);
                    acked.SetResult();
                };
                var tag = await channel.BasicConsumeAsync("q", autoAck: false, consumer, cts.Token);
                await acked.Task.WaitAsync(cts.Token);

                Assert.Equal(("q", 3u, 1u), (declared.QueueName, declared.MessageCount, declared.ConsumerCount));
                Assert.Equal("amq.ctag-1", tag);
                await channel.CloseAsync(cts.Token);
                await connection.CloseAsync(cts.Token);
            }
            await peer.WaitAsync(cts.Token);

            // What the client sent, decoded here.
            var methods = transcript.Methods;
            var startOk = Assert.IsType<ConnectionStartOk>(methods[0]);
            Assert.Equal("PLAIN", startOk.Mechanism);
            Assert.Equal("\0guest\0guest"u8.ToArray(), startOk.Response);
            Assert.True(startOk.ClientProperties.TryGet("capabilities", out var capabilities) && capabilities is FieldTable);
            Assert.Equal(FrameMax, Assert.IsType<ConnectionTuneOk>(methods[1]).FrameMax);
            Assert.Equal(new ConnectionOpen("/"), methods[2]);
            Assert.Equal(ChannelOpen.Instance, methods[3]);
            Assert.Equal(new QueueDeclare("q", false, true, false, false, false, FieldTable.Create([new("x-message-ttl", 60000)])), methods[4]);
            var bind = Assert.IsType<QueueBind>(methods[5]);
            Assert.Equal(FieldTable.Create([new("x-match", "any"u8.ToArray()), new("k", 1)]), bind.Arguments);
            Assert.Equal(FieldTableCodec.Write(bind.Arguments), bind.ArgumentsRaw);
            Assert.Equal(new BasicPublish("amq.direct", "rk", true, false), methods[6]);
            Assert.Equal(new BasicConsume("q", "", false, false, false, false, FieldTable.Empty), methods[7]);
            Assert.Equal(new BasicAck(1, false), methods[8]);
            Assert.IsType<ChannelClose>(methods[9]);
            Assert.IsType<ConnectionClose>(methods[10]);

            Assert.Equal(body, transcript.PublishedBody);
            var properties = BasicPropertiesCodec.Read(transcript.PublishedProperties);
            Assert.Equal(new BasicProperties
            {
                ContentType = "application/octet-stream",
                ContentEncoding = "identity",
                Headers = FieldTable.Create(
                [
                    new("s", "text"u8.ToArray()),
                    new("i", 42),
                    new("l", 7L),
                    new("b", true),
                    new("nested", FieldTable.Create([new("x", 1)])),
                    new("list", new object?[] { 1, "a"u8.ToArray() }),
                ]),
                DeliveryMode = 2,
                Priority = 5,
                CorrelationId = "corr",
                ReplyTo = "replies",
                Expiration = "60000",
                MessageId = "m-1",
                Timestamp = 1700000000,
                Type = "order",
                UserId = "guest",
                AppId = "tests",
                ClusterId = "c1",
            }, properties);
            Assert.Equal((true, "60000"), BasicPropertiesCodec.ReadDelivery(transcript.PublishedProperties));

            // What was encoded here (the published properties passed on verbatim), decoded by the client.
            Assert.NotNull(delivery);
            Assert.Equal(("amq.ctag-1", 1UL, true, "amq.direct", "rk"), (delivery.ConsumerTag, delivery.DeliveryTag, delivery.Redelivered, delivery.Exchange, delivery.RoutingKey));
            Assert.Equal(body, deliveredBody);
            var received = delivery.BasicProperties;
            Assert.Equal(sent.ContentType, received.ContentType);
            Assert.Equal(sent.DeliveryMode, received.DeliveryMode);
            Assert.Equal(sent.Timestamp, received.Timestamp);
            Assert.Equal(sent.ClusterId, received.ClusterId);
            Assert.Equal("text"u8.ToArray(), received.Headers!["s"]);
            Assert.Equal(1, ((IDictionary<string, object?>)received.Headers["nested"]!)["x"]);
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>Answers each request the way a broker would, with fixed values, and records what arrived.</summary>
    private static async Task ServeOneConnectionAsync(TcpListener listener, Transcript transcript, CancellationToken ct)
    {
        using var socket = await listener.AcceptSocketAsync(ct);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var input = PipeReader.Create(stream);
        var output = PipeWriter.Create(stream);
        var headerSeen = false;
        var closed = false;
        ulong expectedBody = 0;
        var body = new ArrayBufferWriter<byte>();
        while (!closed)
        {
            var result = await input.ReadAsync(ct);
            var buffer = result.Buffer;
            if (!headerSeen && AmqpProtocolHeader.TryRead(ref buffer, out var valid))
            {
                Assert.True(valid);
                headerSeen = true;
                AmqpFrameWriter.WriteMethod(output, 0, new ConnectionStart(0, 9,
                    FieldTable.Create([new("product", "codec tests"u8.ToArray()), new("capabilities", FieldTable.Create([new("basic.nack", true)]))]),
                    "PLAIN AMQPLAIN", "en_US"));
            }
            while (headerSeen && !closed && AmqpFrameReader.TryRead(ref buffer, FrameMax, out var frame) is var status && status != AmqpFrameStatus.Incomplete)
            {
                Assert.Equal(AmqpFrameStatus.Complete, status);
                switch (frame.Type)
                {
                    case AmqpFrameType.Header:
                        Assert.True(AmqpFrameWriter.TryReadContentHeader(frame.Payload, out var classId, out expectedBody, out var raw));
                        Assert.Equal(60, classId);
                        transcript.PublishedProperties = raw.ToArray();
                        break;
                    case AmqpFrameType.Body:
                        Assert.True(frame.Payload.Length <= FrameMax - 8);
                        foreach (var segment in frame.Payload)
                        {
                            body.Write(segment.Span);
                        }
                        if ((ulong)body.WrittenCount == expectedBody)
                        {
                            transcript.PublishedBody = body.WrittenSpan.ToArray();
                        }
                        break;
                    case AmqpFrameType.Method:
                        var method = AmqpMethodCodec.Decode(frame.Payload);
                        transcript.Methods.Add(method);
                        closed = Answer(output, frame.Channel, method, transcript);
                        break;
                }
            }
            input.AdvanceTo(buffer.Start, buffer.End);
            await output.FlushAsync(ct);
            if (result.IsCompleted)
            {
                break;
            }
        }
        await input.CompleteAsync();
        await output.CompleteAsync();
    }

    private static bool Answer(PipeWriter output, ushort channel, AmqpMethod method, Transcript transcript)
    {
        switch (method)
        {
            case ConnectionStartOk:
                AmqpFrameWriter.WriteMethod(output, 0, new ConnectionTune(2047, FrameMax, 0));
                break;
            case ConnectionOpen:
                AmqpFrameWriter.WriteMethod(output, 0, ConnectionOpenOk.Instance);
                break;
            case ChannelOpen:
                AmqpFrameWriter.WriteMethod(output, channel, ChannelOpenOk.Instance);
                break;
            case QueueDeclare declare:
                AmqpFrameWriter.WriteMethod(output, channel, new QueueDeclareOk(declare.Queue, 3, 1));
                break;
            case QueueBind:
                AmqpFrameWriter.WriteMethod(output, channel, QueueBindOk.Instance);
                break;
            case BasicConsume consume:
                var tag = consume.ConsumerTag.Length == 0 ? "amq.ctag-1" : consume.ConsumerTag;
                AmqpFrameWriter.WriteMethod(output, channel, new BasicConsumeOk(tag));
                AmqpFrameWriter.WriteMethod(output, channel, new BasicDeliver(tag, 1, true, "amq.direct", "rk"));
                AmqpFrameWriter.WriteContent(output, channel, transcript.PublishedProperties, transcript.PublishedBody, FrameMax);
                break;
            case ChannelClose:
                AmqpFrameWriter.WriteMethod(output, channel, ChannelCloseOk.Instance);
                break;
            case ConnectionClose:
                AmqpFrameWriter.WriteMethod(output, 0, ConnectionCloseOk.Instance);
                return true;
        }
        return false;
    }
}
