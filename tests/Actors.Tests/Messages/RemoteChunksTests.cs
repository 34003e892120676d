using Broker.Actors.Messages;

namespace Broker.Actors.Tests.Messages;

public sealed class RemoteChunksTests
{
    [Fact]
    public void Nothing_gives_one_empty_chunk()
    {
        var chunks = RemoteChunks.Split(Array.Empty<int>(), _ => 1).ToList();
        Assert.Single(chunks);
        Assert.Empty(chunks[0]);
    }

    [Fact]
    public void Small_items_fill_chunks_up_to_the_chunk_size_in_order()
    {
        var items = Enumerable.Range(0, 10).ToList();
        var chunks = RemoteChunks.Split(items, _ => RemoteChunks.ChunkBytes / 4).ToList();
        Assert.Equal([4, 4, 2], chunks.Select(c => c.Count));
        Assert.Equal(items, chunks.SelectMany(c => c));
    }

    [Fact]
    public void An_item_larger_than_a_chunk_travels_alone()
    {
        long[] sizes = [10, RemoteChunks.ChunkBytes * 3, 10, 10];
        var chunks = RemoteChunks.Split(Enumerable.Range(0, sizes.Length).ToList(), i => sizes[i]).ToList();
        Assert.Equal([[0], [1], [2, 3]], chunks);
    }

    [Fact]
    public void A_message_estimate_is_at_least_its_payload_and_strings()
    {
        var m = new PublishedMessage("t/x", new byte[1000], 1, false, ContentType: "text", UserProperties: [new UserProperty("k", "vvvv")]);
        Assert.True(m.ApproximateSize >= 1000 + 3 + 4 + 1 + 4);
    }
}
