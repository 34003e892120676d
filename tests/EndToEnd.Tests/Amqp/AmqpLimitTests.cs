using System.Net.Sockets;
using Broker.Actors.Amqp.Content;
using Broker.Edge.Amqp;
using Broker.Tests.Shared;
using RabbitMQ.Client;

namespace Broker.EndToEnd.Tests.Amqp;

/// <summary>A node with the broker.amqp limits set low enough for a test to cross each of them.</summary>
public sealed class AmqpLimitsFixture : IAsyncLifetime
{
    public const long MaxPendingContentBytes = 8 * 1024 * 1024;

    public TestNode Node { get; private set; } = null!;

    public async Task InitializeAsync() => Node = await TestNode.StartAsync($$"""
        broker.amqp {
          max-pending-content-bytes = {{MaxPendingContentBytes}}
        }
        """);

    public async Task DisposeAsync()
    {
        await Node.DisposeAsync();
        Node.DeleteData();
    }
}

/// <summary>
/// Each broker.amqp bound crossed over a raw socket: the protocol's answer, and another client of the node
/// unaffected afterwards.
/// </summary>
public sealed class AmqpLimitTests(AmqpLimitsFixture fixture) : IClassFixture<AmqpLimitsFixture>
{
    private const int FramePayload = 131072 - 8;

    private int Port => fixture.Node.AmqpPort;

    /// <summary>A stock client on a fresh connection round-trips a body spanning several frames.</summary>
    private async Task AssertAnotherClientWorksAsync()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        var body = new byte[3 * FramePayload + 17];
        Random.Shared.NextBytes(body);
        await channel.BasicPublishAsync("", queue, body);
        var deadline = DateTime.UtcNow + RawAmqpClient.Timeout;
        while (true)
        {
            if (await channel.BasicGetAsync(queue, autoAck: true) is { } got)
            {
                Assert.True(body.AsSpan().SequenceEqual(got.Body.Span), "the body came back intact");
                return;
            }
            Assert.True(DateTime.UtcNow < deadline, "the message reached its queue in time");
        }
    }

    private static async Task OpenChannelAsync(RawAmqpClient client, ushort number)
    {
        await client.SendAsync(number, ChannelOpen.Instance);
        Assert.IsType<ChannelOpenOk>(await client.ReadMethodAsync(number));
    }

    [Fact]
    public async Task Declared_body_sizes_take_no_memory_and_unfinished_bodies_past_the_connection_bound_close_it_with_506()
    {
        const int channels = 200;
        var declared = (ulong)(16 * 1024 * 1024); // the default max-message-size: each header passes the size check
        using var client = await RawAmqpClient.OpenAsync(Port);
        for (ushort n = 1; n <= channels; n++)
        {
            AmqpFrameWriter.WriteMethod(client.Output, n, ChannelOpen.Instance);
        }
        await client.FlushAsync();
        for (ushort n = 1; n <= channels; n++)
        {
            Assert.IsType<ChannelOpenOk>(await client.ReadMethodAsync(n));
        }
        var before = GC.GetTotalMemory(forceFullCollection: true);
        for (ushort n = 1; n <= channels; n++)
        {
            AmqpFrameWriter.WriteMethod(client.Output, n, new BasicPublish("", "nowhere", false, false));
            client.WriteContentHeader(n, declared);
        }
        await client.FlushAsync();
        // The node reads a connection's frames in order: once this is answered, every header above was taken in.
        await OpenChannelAsync(client, channels + 1);
        var growth = GC.GetTotalMemory(forceFullCollection: true) - before;
        var declaredTotal = (long)declared * channels;
        Assert.True(growth < declaredTotal / 16, $"the heap grew by {growth} bytes for {declaredTotal} declared");

        // Now bodies arrive: a frame on each channel, until the connection holds more than its bound.
        var payload = new byte[FramePayload];
        var sender = Task.Run(async () =>
        {
            try
            {
                for (ushort n = 1; n <= channels; n++)
                {
                    client.WriteBodyFrame(n, payload);
                    await client.FlushAsync();
                }
            }
            catch (SocketException)
            {
                // The node closed the socket while the rest was still going out.
            }
        });
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal(AmqpReplyCode.ResourceError, close.ReplyCode);
        Assert.StartsWith("RESOURCE_ERROR", close.ReplyText, StringComparison.Ordinal);
        // The node no longer reads this socket and closes it a second after its close: the sender stops there.
        await sender.WaitAsync(RawAmqpClient.Timeout);
        Assert.True(AmqpLimitsFixture.MaxPendingContentBytes / FramePayload < channels, "the test sends more than the bound");
        await AssertAnotherClientWorksAsync();
    }

    [Fact]
    public async Task A_publish_on_channel_0_closes_the_connection_with_503_before_its_content_is_read()
    {
        using var client = await RawAmqpClient.OpenAsync(Port);
        AmqpFrameWriter.WriteMethod(client.Output, 0, new BasicPublish("", "q", false, false));
        client.WriteContentHeader(0, 1024 * 1024);
        await client.FlushAsync();
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal((AmqpReplyCode.CommandInvalid, (ushort)60, (ushort)40), (close.ReplyCode, close.FailingClassId, close.FailingMethodId));
        await AssertAnotherClientWorksAsync();
    }

    [Fact]
    public async Task Content_before_connection_open_closes_the_connection_with_504_without_waiting_for_its_body()
    {
        using var client = await RawAmqpClient.OpenAsync(Port, open: false);
        AmqpFrameWriter.WriteMethod(client.Output, 1, new BasicPublish("", "q", false, false));
        client.WriteContentHeader(1, 16 * 1024 * 1024);
        await client.FlushAsync();
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal(AmqpReplyCode.ChannelError, close.ReplyCode);
        Assert.Contains("before connection.open", close.ReplyText, StringComparison.Ordinal);
        await AssertAnotherClientWorksAsync();
    }
}
