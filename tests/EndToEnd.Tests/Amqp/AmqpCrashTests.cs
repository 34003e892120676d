using System.Text;
using Broker.Tests.Shared;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using Xunit.Abstractions;

namespace Broker.EndToEnd.Tests.Amqp;

/// <summary>The node as a separate process, killed with SIGKILL: durable AMQP definitions and confirmed persistent messages survive.</summary>
public sealed class AmqpCrashTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Durable_topology_and_confirmed_persistent_messages_survive_sigkill()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "broker-amqp-crash-" + Guid.NewGuid().ToString("N"));
        const int count = 300;
        try
        {
            using (var node = await NodeProcess.StartAsync(dataDir, "amqp-crash"))
            {
                await using var connection = await AmqpTestClient.ConnectAsync(node.AmqpPort, "crash-publisher");
                await using var channel = await connection.ConfirmChannelAsync();
                await channel.ExchangeDeclareAsync("orders", ExchangeType.Topic, durable: true);
                await channel.QueueDeclareAsync("orders.eu", durable: true, exclusive: false, autoDelete: false);
                await channel.QueueBindAsync("orders.eu", "orders", "eu.#");
                await channel.QueueDeclareAsync("scratch", durable: false, exclusive: false, autoDelete: false);
                await channel.QueueBindAsync("scratch", "orders", "#");
                await channel.ExchangeDeclareAsync("transient-x", ExchangeType.Fanout, durable: false);
                for (var i = 0; i < count; i++)
                {
                    await channel.PublishTextAsync("orders", "eu.de", "m" + i, persistent: true);
                }
                // One delivered and not acknowledged when the node dies: it comes back, marked redelivered.
                await using var consumerChannel = await connection.CreateChannelAsync();
                var head = await consumerChannel.BasicGetAsync("orders.eu", autoAck: false);
                Assert.Equal("m0", Encoding.UTF8.GetString(head!.Body.Span));
                node.Kill(); // right after the last confirm
            }

            using var restarted = await NodeProcess.StartAsync(dataDir, "amqp-crash");
            output.WriteLine($"restarted as pid {restarted.Pid}");
            await using var again = await AmqpTestClient.ConnectAsync(restarted.AmqpPort, "crash-consumer");
            await using var check = await again.CreateChannelAsync();
            var declared = await check.QueueDeclarePassiveAsync("orders.eu");
            Assert.Equal((uint)count, declared.MessageCount);
            var consumer = new RecordingConsumer(check);
            await check.BasicConsumeAsync("orders.eu", false, consumer);
            var first = consumer.Next(TimeSpan.FromSeconds(20));
            Assert.Equal("m0", first.Text);
            Assert.True(first.Redelivered);
            var got = new List<string> { first.Text };
            for (var i = 1; i < count; i++)
            {
                got.Add(consumer.Next(TimeSpan.FromSeconds(20)).Text);
            }
            Assert.Equal(Enumerable.Range(0, count).Select(i => "m" + i), got);
            await check.BasicAckAsync(0, true);

            // The durable binding routes as before; the transient queue and exchange went with the restart.
            await check.PublishTextAsync("orders", "eu.fr", "after restart", persistent: true);
            Assert.Equal("after restart", consumer.Next(TimeSpan.FromSeconds(20)).Text);
            foreach (var declare in new Func<IChannel, Task>[] { c => c.QueueDeclarePassiveAsync("scratch"), c => c.ExchangeDeclarePassiveAsync("transient-x") })
            {
                await using var probe = await again.CreateChannelAsync();
                var ex = await Assert.ThrowsAsync<OperationInterruptedException>(() => declare(probe));
                Assert.Equal(404, ex.ShutdownReason!.ReplyCode);
            }
            Assert.True(restarted.Terminate(TimeSpan.FromSeconds(30)), "clean stop on SIGTERM");
        }
        finally
        {
            try
            {
                Directory.Delete(dataDir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
