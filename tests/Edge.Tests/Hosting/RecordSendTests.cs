using System.Net;
using System.Net.Sockets;
using Broker.Edge.Hosting;

namespace Broker.Edge.Tests.Hosting;

/// <summary><see cref="RecordSend"/> over real loopback connections: which clients get records, and what a record send does.</summary>
public sealed class RecordSendTests
{
    /// <summary>A connected pair; <paramref name="clientReceiveBuffer"/> is set before connecting, as MQTTnet does.</summary>
    private static async Task<(Socket Server, Socket Client)> PairAsync(int? clientReceiveBuffer = null)
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        if (clientReceiveBuffer is { } size)
        {
            client.ReceiveBufferSize = size;
        }
        await client.ConnectAsync((IPEndPoint)listener.LocalEndPoint!);
        var server = await listener.AcceptAsync();
        server.NoDelay = true;
        return (server, client);
    }

    [Fact]
    public async Task A_client_with_an_8_KiB_receive_buffer_gets_plain_512_byte_sends()
    {
        Assert.True(OperatingSystem.IsLinux(), "the broker runs on Linux");
        var (server, client) = await PairAsync(8192);
        using var _ = server;
        using var __ = client;
        Assert.InRange(RecordSend.SendWindow(server)!.Value, 1u, (uint)RecordSend.LargeWindow - 1);
        Assert.Equal(RecordSend.PlainSendSize, RecordSend.SendSize(server));
        Assert.Equal(RecordSend.PlainSendSize, new SocketLink(server).SendSize);
    }

    [Fact]
    public async Task A_client_that_leaves_its_buffers_to_the_kernel_gets_records_of_4_KiB()
    {
        var (server, client) = await PairAsync();
        using var _ = server;
        using var __ = client;
        Assert.True(RecordSend.SendWindow(server) >= RecordSend.LargeWindow, $"window {RecordSend.SendWindow(server)}");
        Assert.Equal(RecordSend.MaxSendSize, RecordSend.SendSize(server));
    }

    [Fact]
    public async Task Records_arrive_whole_and_in_order_and_a_full_buffer_sends_nothing_instead_of_waiting()
    {
        var (server, client) = await PairAsync();
        using var _ = client;
        server.SendBufferSize = 16 * 1024;
        var sent = new MemoryStream();
        var record = new byte[RecordSend.MaxSendSize];
        var total = 0;
        // The client does not read: the kernel's buffers fill, and then a record send takes nothing (it does not block).
        for (var i = 0; i < 10_000; i++)
        {
            Array.Fill(record, (byte)i);
            var n = RecordSend.TrySend(server, record);
            if (n == 0)
            {
                break;
            }
            sent.Write(record, 0, n);
            total += n;
        }
        Assert.InRange(total, RecordSend.MaxSendSize, 10_000 * RecordSend.MaxSendSize - 1);
        server.Shutdown(SocketShutdown.Send);
        var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = await client.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(30))) > 0)
        {
            received.Write(buffer, 0, read);
        }
        Assert.Equal(sent.ToArray(), received.ToArray());
        // A closed socket sends nothing and does not throw: the caller's ordinary send reports it.
        server.Dispose();
        Assert.Equal(0, RecordSend.TrySend(server, record));
    }
}
