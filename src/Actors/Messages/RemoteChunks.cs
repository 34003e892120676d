namespace Broker.Actors.Messages;

/// <summary>
/// Splits a reply that carries many items (retained messages, route tables) into chunks that each fit one
/// cluster frame. A chunk holds items up to <see cref="ChunkBytes"/> in all, or a single item when that one is
/// larger: one item always fits, since the remoting frame is sized for the largest message a client may send
/// plus <see cref="FrameHeadroom"/> (see BrokerConfig).
/// </summary>
public static class RemoteChunks
{
    /// <summary>Target size of one chunk of a multi-item reply.</summary>
    public const long ChunkBytes = 1024 * 1024;

    /// <summary>What the remoting frame holds beyond the largest single message: a chunk's other items and envelopes.</summary>
    public const long FrameHeadroom = 2 * ChunkBytes;

    /// <summary>The items in order, cut into chunks by their <paramref name="sizeOf"/>; at least one chunk, maybe empty.</summary>
    public static IEnumerable<List<T>> Split<T>(IReadOnlyList<T> items, Func<T, long> sizeOf)
    {
        var chunk = new List<T>();
        long bytes = 0;
        foreach (var item in items)
        {
            var size = sizeOf(item);
            if (chunk.Count > 0 && bytes + size > ChunkBytes)
            {
                yield return chunk;
                chunk = [];
                bytes = 0;
            }
            chunk.Add(item);
            bytes += size;
        }
        yield return chunk;
    }
}
