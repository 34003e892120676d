using System.Net.Sockets;
using System.Text;
using Broker.Tests.Shared;
using MQTTnet;
using RabbitMQ.Client;
using Xunit.Abstractions;

namespace Broker.EndToEnd.Tests;

/// <summary>
/// The node as a separate process with a low memory watermark: messages held for an offline session fill its heap
/// until publishers are blocked; the subscriber still drains them, and then publishers go on.
/// </summary>
public sealed class MemoryAlarmTests(ITestOutputHelper output)
{
    private const int Watermark = 160 * 1024 * 1024;
    private const int PayloadSize = 1024 * 1024 - 64;

    [Fact]
    public async Task Above_the_watermark_publishers_are_blocked_consumers_drain_and_then_publishers_go_on()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "broker-memory-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var node = await NodeProcess.StartAsync(dataDir, "memory-node",
                new Dictionary<string, string> { ["BROKER_MEMORY_HIGH_WATERMARK_BYTES"] = Watermark.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            await TestClient.LeaveOfflineSessionAsync(node.MqttPort, "mem-sub", "mem/#", sessionExpiry: 600);
            await using var amqp = await AmqpTestClient.ConnectAsync(node.AmqpPort, "mem-amqp");
            var blocked = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            var unblocked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            amqp.ConnectionBlockedAsync += (_, e) =>
            {
                blocked.TrySetResult(e.Reason);
                return Task.CompletedTask;
            };
            amqp.ConnectionUnblockedAsync += (_, _) =>
            {
                unblocked.TrySetResult();
                return Task.CompletedTask;
            };
            await using var channel = await amqp.ConfirmChannelAsync();
            var queue = (await channel.QueueDeclareAsync("mem-q", durable: true, exclusive: false, autoDelete: false)).QueueName;

            using var publisher = await RawPublisher.ConnectAsync(node.MqttPort);
            ushort id = 0;
            var acked = 0;
            // Each acknowledged message stays in the offline session's queue (in memory) until the subscriber is back.
            while (true)
            {
                id++;
                await publisher.PublishAsync("mem/t", id, PayloadSize);
                if (!await publisher.TryReadPubAckAsync(id, TimeSpan.FromSeconds(3)))
                {
                    break;
                }
                acked++;
                Assert.True(acked < 600, "publishing went on far past the watermark");
            }
            var rssBlocked = Rss(node.Pid);
            output.WriteLine($"memory alarm: blocked after {acked} messages of 1 MiB; node RSS {rssBlocked >> 20} MiB");
            Assert.True(acked >= Watermark / PayloadSize / 2, $"blocked after only {acked} messages");
            Assert.Contains("memory alarm set", node.Log, StringComparison.Ordinal);

            // An AMQP publisher is blocked as well, and told so.
            var amqpPublish = channel.BasicPublishAsync("", queue, true, new BasicProperties(), "during the alarm"u8.ToArray()).AsTask();
            Assert.Equal("low on memory", await blocked.Task.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.False(amqpPublish.IsCompleted);

            // The consumer drains what the node holds, and the alarm clears.
            await using var sub = await TestClient.ConnectAsync(node.MqttPort, "mem-sub", clean: false, sessionExpiry: 600);
            for (var i = 0; i < acked; i++)
            {
                Assert.Equal(PayloadSize, sub.Next(TimeSpan.FromSeconds(30)).Payload.Length);
            }
            Assert.True(await publisher.TryReadPubAckAsync(id, TimeSpan.FromSeconds(30)), "the blocked publish is acknowledged once the alarm clears");
            await unblocked.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await amqpPublish.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Contains("memory alarm cleared", node.Log, StringComparison.Ordinal);
            Assert.Equal(PayloadSize, sub.Next(TimeSpan.FromSeconds(30)).Payload.Length);
            output.WriteLine($"memory alarm: cleared after the subscriber drained; node RSS {Rss(node.Pid) >> 20} MiB");
            Assert.True(node.Terminate(TimeSpan.FromSeconds(30)));
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

    private static long Rss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
        }
        return 0;
    }

    /// <summary>An MQTT 3.1.1 client on a raw socket, so a PUBACK that does not come is seen as such.</summary>
    private sealed class RawPublisher : IDisposable
    {
        private readonly Socket _socket;
        private readonly NetworkStream _stream;

        private RawPublisher(Socket socket)
        {
            _socket = socket;
            _stream = new NetworkStream(socket, ownsSocket: true);
        }

        public static async Task<RawPublisher> ConnectAsync(int port)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync("127.0.0.1", port);
            var p = new RawPublisher(socket);
            // CONNECT 3.1.1, clean session, keep alive 0, client id "mem-pub".
            byte[] connect = [0x10, 19, 0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 4, 0x02, 0, 0, 0, 7, .. "mem-pub"u8];
            await p._stream.WriteAsync(connect);
            var connack = new byte[4];
            await p._stream.ReadExactlyAsync(connack);
            Assert.Equal([0x20, 2, 0, 0], connack);
            return p;
        }

        public async Task PublishAsync(string topic, ushort id, int payloadSize)
        {
            var topicBytes = Encoding.UTF8.GetBytes(topic);
            var remaining = 2 + topicBytes.Length + 2 + payloadSize;
            var packet = new List<byte> { 0x32 };
            for (var r = remaining; ; )
            {
                var b = (byte)(r & 0x7F);
                r >>= 7;
                packet.Add(r > 0 ? (byte)(b | 0x80) : b);
                if (r == 0)
                {
                    break;
                }
            }
            packet.AddRange([(byte)(topicBytes.Length >> 8), (byte)topicBytes.Length, .. topicBytes, (byte)(id >> 8), (byte)id]);
            await _stream.WriteAsync(packet.ToArray());
            await _stream.WriteAsync(new byte[payloadSize]);
        }

        /// <summary>Reads PUBACKs until the one for <paramref name="id"/>; false when none came within <paramref name="timeout"/>.</summary>
        public async Task<bool> TryReadPubAckAsync(ushort id, TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            var ack = new byte[4];
            try
            {
                while (true)
                {
                    await _stream.ReadExactlyAsync(ack, cts.Token);
                    Assert.Equal(0x40, ack[0]);
                    if (((ack[2] << 8) | ack[3]) == id)
                    {
                        return true;
                    }
                }
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        public void Dispose() => _stream.Dispose();
    }
}
