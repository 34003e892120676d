using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Broker.Edge.Hosting;
using Broker.Edge.Mqtt;
using Broker.Tests.Shared;

namespace Broker.Edge.Tests.Hosting;

public sealed class InboundGateTests
{
    private const int Overhead = InboundGate.ItemOverhead;

    [Fact]
    public async Task Reading_waits_above_the_high_water_mark_until_half_is_released()
    {
        var gate = new InboundGate(10 * (1000 + Overhead));
        for (var i = 0; i < 11; i++)
        {
            gate.Add(1000);
        }
        Assert.True(gate.IsAboveHighWater);
        var wait = gate.WaitAsync(CancellationToken.None);

        for (var i = 0; i < 5; i++)
        {
            Assert.False(wait.IsCompleted);
            gate.Release(1000);
        }
        // 6 items left: still above half the mark.
        Assert.False(wait.IsCompleted);
        gate.Release(1000);
        await wait.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(5 * (1000 + Overhead), gate.Pending);
    }

    [Fact]
    public async Task Closing_the_gate_lets_a_waiting_read_loop_go_on_for_good()
    {
        var gate = new InboundGate(4096);
        gate.Add(10_000);
        var wait = gate.WaitAsync(CancellationToken.None);
        Assert.False(wait.IsCompleted);

        gate.Close();

        await wait.WaitAsync(TimeSpan.FromSeconds(5));
        gate.Add(1_000_000);
        Assert.False(gate.IsAboveHighWater);
    }

    /// <summary>Stands in for the connection actor: records every packet and acts on it only when allowed to.</summary>
    private sealed class SlowConnection : ReceiveActor
    {
        public SlowConnection(MqttTransport transport, ConcurrentQueue<int> received, Func<bool> acting)
        {
            var held = new Queue<int>();
            Receive<InboundPacket>(p =>
            {
                received.Enqueue(p.Size);
                held.Enqueue(p.Size);
                while (acting() && held.Count > 0)
                {
                    transport.Inbound.Release(held.Dequeue());
                }
            });
            Receive<string>(_ =>
            {
                while (held.Count > 0)
                {
                    transport.Inbound.Release(held.Dequeue());
                }
            });
            ReceiveAny(_ => { });
        }
    }

    [Fact]
    public async Task An_mqtt_client_faster_than_its_connection_is_not_read_beyond_the_high_water_mark()
    {
        const int highWater = 64 * 1024;
        using var system = ActorSystem.Create("inbound-gate");
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync((IPEndPoint)listener.LocalEndPoint!);
        var server = await listener.AcceptAsync();
        var transport = new MqttTransport(server, highWater);
        var received = new ConcurrentQueue<int>();
        var acting = false;
        var connection = system.ActorOf(Props.Create(() => new SlowConnection(transport, received, () => Volatile.Read(ref acting))));
        var run = transport.RunAsync(connection, 1 << 20, _ => { }, CancellationToken.None);

        // CONNECT (3.1.1, client id "c"), then 20,000 QoS 0 PUBLISHes of 1 KiB: about 20 MiB, far beyond what
        // the socket buffers hold, so a read loop that kept reading would take them all into the actor's mailbox.
        byte[] connect = [0x10, 13, 0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 4, 0x02, 0, 60, 0, 1, (byte)'c'];
        var publish = new byte[1 + 2 + 3 + 1024];
        publish[0] = 0x30;
        publish[1] = (byte)(0x80 | ((3 + 1024) & 0x7F));
        publish[2] = (byte)((3 + 1024) >> 7);
        publish[3] = 0;
        publish[4] = 1;
        publish[5] = (byte)'t';
        const int count = 20_000;
        var sending = Task.Run(async () =>
        {
            await client.SendAsync(connect);
            for (var i = 0; i < count; i++)
            {
                await client.SendAsync(publish);
            }
        });

        await Wait.UntilAsync(() => transport.Inbound.Pending > highWater, TimeSpan.FromSeconds(10), "the first packets");
        // Absence check: the sender stays blocked because the node stopped reading its socket.
        Assert.NotSame(sending, await Task.WhenAny(sending, Task.Delay(TimeSpan.FromSeconds(2))));
        Assert.InRange(received.Sum(), highWater / 2, highWater + publish.Length);
        Assert.InRange(transport.Inbound.Pending, highWater, highWater + publish.Length + Overhead);

        Volatile.Write(ref acting, true);
        connection.Tell("act on what is held");
        await sending.WaitAsync(TimeSpan.FromSeconds(30));
        await Wait.UntilAsync(() => received.Count == count, TimeSpan.FromSeconds(30), "every packet");
        Assert.All(received, size => Assert.Equal(publish.Length, size));

        // The connection actor's part at the end: no more output, so the transport's send pump ends too.
        client.Shutdown(SocketShutdown.Both);
        transport.CompleteOutput();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
