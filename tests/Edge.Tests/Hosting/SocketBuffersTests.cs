using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Broker.Edge.Hosting;
using Broker.Tests.Shared;

namespace Broker.Edge.Tests.Hosting;

/// <summary><see cref="SocketOutput"/> and <see cref="SocketInput"/> over a real loopback connection.</summary>
public sealed class SocketBuffersTests
{
    private static async Task<(Socket Server, Socket Client)> PairAsync()
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync((IPEndPoint)listener.LocalEndPoint!);
        var server = await listener.AcceptAsync();
        return (server, client);
    }

    /// <summary>Reads until the peer shuts its side down.</summary>
    private static async Task<byte[]> ReadToEndAsync(Socket socket)
    {
        var all = new MemoryStream();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(30));
            if (n == 0)
            {
                return all.ToArray();
            }
            all.Write(buffer, 0, n);
        }
    }

    private static byte[] Frame(int index, int length)
    {
        var frame = new byte[length];
        for (var i = 0; i < length; i++)
        {
            frame[i] = (byte)(index * 31 + i);
        }
        return frame;
    }

    [Fact]
    public async Task Every_flushed_byte_arrives_in_order_then_the_socket_is_shut_down()
    {
        var (server, client) = await PairAsync();
        using var _ = client;
        var output = new SocketOutput(new SocketLink(server), new Broker.Actors.Messages.ProtocolCounters("test"));
        var reading = ReadToEndAsync(client);
        var expected = new MemoryStream();
        // Small frames that pile up while a send is under way, and frames larger than one rented buffer.
        for (var i = 0; i < 3000; i++)
        {
            var frame = Frame(i, i % 100 == 0 ? 20_000 + i : 1 + i % 300);
            output.Writer.Write(frame);
            if (i % 3 != 0)
            {
                // Several frames in one flush, as the AMQP actor writes them.
                output.Flush();
            }
            expected.Write(frame);
        }
        output.Flush();
        output.Complete();
        Assert.True(output.IsClosed);
        Assert.Equal(expected.ToArray(), await reading);
        await output.DrainAsync().WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(0, output.PendingBytes);
    }

    [Fact]
    public async Task Frames_written_after_completion_are_dropped_and_an_idle_output_shuts_down_at_once()
    {
        var (server, client) = await PairAsync();
        using var _ = client;
        var output = new SocketOutput(new SocketLink(server), new Broker.Actors.Messages.ProtocolCounters("test"));
        output.Writer.Write("abc"u8);
        output.Flush();
        await Wait.UntilAsync(() => output.PendingBytes == 0, TimeSpan.FromSeconds(10), "the first frame sent");
        output.Complete();
        output.Writer.Write("late"u8);
        Assert.Equal(0, output.Flush());
        Assert.Equal("abc"u8.ToArray(), await ReadToEndAsync(client));
        await output.DrainAsync().WaitAsync(TimeSpan.FromSeconds(15));
    }

    [Fact]
    public async Task A_peer_that_stops_reading_is_aborted_by_the_drain()
    {
        var (server, client) = await PairAsync();
        using var _ = client;
        server.SendBufferSize = 4096;
        client.ReceiveBufferSize = 4096;
        var output = new SocketOutput(new SocketLink(server), new Broker.Actors.Messages.ProtocolCounters("test"));
        var frame = new byte[64 * 1024];
        for (var i = 0; i < 200; i++)
        {
            output.Writer.Write(frame);
            output.Flush();
        }
        // The output is never completed and the client never reads: the drain gives up after its grace period.
        var draining = output.DrainAsync(TimeSpan.FromSeconds(1));
        await draining.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(output.IsClosed);
        Assert.Equal(0, output.Flush());
    }

    [Fact]
    public async Task Input_holds_no_buffer_between_frames_and_grows_for_a_frame_larger_than_it()
    {
        var (server, client) = await PairAsync();
        using var _ = client;
        using var __ = server;
        var link = new SocketLink(server);
        var counters = new Broker.Actors.Messages.ProtocolCounters("test");
        var input = new SocketInput(link, counters, new SocketOutput(link, counters));
        Assert.True(input.IsEmpty);
        Assert.Equal(0, input.Buffered.Length);

        // A frame of 100,000 bytes (4-byte length prefix) sent in pieces, then a small one.
        var big = Frame(7, 100_000);
        var frames = new List<byte[]> { big, Frame(8, 10) };
        var sending = Task.Run(async () =>
        {
            foreach (var frame in frames)
            {
                var prefixed = new byte[4 + frame.Length];
                BitConverter.TryWriteBytes(prefixed, frame.Length);
                frame.CopyTo(prefixed, 4);
                for (var offset = 0; offset < prefixed.Length; offset += 7000)
                {
                    await client.SendAsync(prefixed.AsMemory(offset, Math.Min(7000, prefixed.Length - offset)), SocketFlags.None);
                }
            }
        });

        var received = new List<byte[]>();
        var afterWait = false;
        while (received.Count < frames.Count)
        {
            // With nothing held, a receive only waits for data: it buffers (and rents) nothing; the one after it does.
            var waits = input.IsEmpty && !afterWait;
            var n = await input.ReceiveAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.True(input.Commit(n));
            Assert.Equal(waits, input.IsEmpty);
            afterWait = waits;
            var buffer = input.Buffered;
            while (buffer.Length >= 4)
            {
                var length = BitConverter.ToInt32(buffer.Slice(0, 4).ToArray());
                if (buffer.Length < 4 + length)
                {
                    break;
                }
                received.Add(buffer.Slice(4, length).ToArray());
                buffer = buffer.Slice(4 + length);
            }
            input.Consume(buffer.Start);
        }
        await sending;
        Assert.Equal(frames, received);
        // Everything consumed: the buffer went back to the pool.
        Assert.True(input.IsEmpty);
        Assert.Equal(0, input.Buffered.Length);

        client.Shutdown(SocketShutdown.Send);
        // The wait ends (the peer closed), then the receive says so.
        Assert.True(input.Commit(await input.ReceiveAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10))));
        Assert.False(input.Commit(await input.ReceiveAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10))));
        input.Release();
    }
}
