using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Broker.Tests.Shared;

namespace Broker.EndToEnd.Tests;

/// <summary>
/// A client with Nagle's algorithm on (as paho-mqtt 1.x and libmosquitto by default) holds a small packet until the
/// node has acknowledged the one before at the TCP level, and Linux holds back that acknowledgement for up to 40 ms on a
/// connection that carries data both ways. The node acknowledges what a client sent itself when it has sent nothing
/// back for 2 ms (<c>OwedAcks</c> in src/Edge; docs/benchmarks.md, "Delayed acknowledgements").
/// </summary>
public sealed class DelayedAckTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync();

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    /// <remarks>
    /// Each round: a QoS 1 PUBLISH to a topic the client subscribed to, its PUBACK and the delivery back, the client's
    /// PUBACK of the delivery and at once the next PUBLISH, which its Nagle holds until the node acknowledges that PUBACK.
    /// Checked: without the node's own acknowledgement every round took 40-44 ms (the kernel's delay); with it about the node's delay (1-2 ms).
    /// </remarks>
    [Fact]
    public async Task A_client_with_nagle_on_gets_its_round_trips_without_the_kernels_acknowledgement_delay()
    {
        var topic = Ids.New("nagle");
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = false };
        using (var cts = new CancellationTokenSource(MqttWire.ReadTimeout))
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _node.MqttPort), cts.Token);
        }
        await socket.SendAsync(MqttWire.Connect(Ids.New("nagle-client"), 4), SocketFlags.None);
        Assert.Equal(0x20, (await MqttWire.ReadPacketAsync(socket)).Header);
        await socket.SendAsync(MqttWire.Subscribe(4, 1, (topic, 1)), SocketFlags.None);
        Assert.Equal([1], await MqttWire.ReadSubAckAsync(socket, 4, 1));

        const int warmUp = 5;
        const int rounds = 40;
        var times = new List<double>();
        var payload = Encoding.ASCII.GetBytes("ping");
        await socket.SendAsync(MqttWire.Publish(4, topic, 1, 1, payload), SocketFlags.None);
        for (ushort round = 1; round <= warmUp + rounds; round++)
        {
            var started = Stopwatch.GetTimestamp();
            var acknowledged = false;
            ushort? delivery = null;
            while (!acknowledged || delivery is null)
            {
                var (header, body) = await MqttWire.ReadPacketAsync(socket);
                if (header == 0x40)
                {
                    Assert.Equal(round, (ushort)((body[0] << 8) | body[1]));
                    acknowledged = true;
                }
                else
                {
                    Assert.Equal(0x32, header & 0xF6);   // a QoS 1 PUBLISH (DUP and RETAIN aside)
                    var topicLength = (body[0] << 8) | body[1];
                    delivery = (ushort)((body[2 + topicLength] << 8) | body[3 + topicLength]);
                }
            }
            if (round > warmUp)
            {
                times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
            // The PUBACK of the delivery, then at once the next PUBLISH: two small writes, the second held by Nagle.
            await socket.SendAsync(new byte[] { 0x40, 0x02, (byte)(delivery.Value >> 8), (byte)delivery.Value }, SocketFlags.None);
            if (round < warmUp + rounds)
            {
                await socket.SendAsync(MqttWire.Publish(4, topic, 1, (ushort)(round + 1), payload), SocketFlags.None);
            }
        }

        times.Sort();
        var median = times[times.Count / 2];
        Assert.True(median < 15, $"median round trip {median:F1} ms (40 ms is the kernel's delayed acknowledgement); all: {string.Join(", ", times.Select(t => t.ToString("F1")))}");
    }
}
