using System.Text;

namespace Broker.Actors.Routing;

/// <summary>A session's subscription filters as the session catalog stores them: a count, then each filter's UTF-8 length and bytes (7-bit varints).</summary>
public static class RouteCodec
{
    public static byte[] Encode(IReadOnlyCollection<string> filters)
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            w.Write7BitEncodedInt(filters.Count);
            foreach (var f in filters)
            {
                w.Write(f); // length-prefixed UTF-8
            }
        }
        return stream.ToArray();
    }

    public static List<string> Decode(byte[] data)
    {
        using var r = new BinaryReader(new MemoryStream(data), Encoding.UTF8);
        var count = r.Read7BitEncodedInt();
        var filters = new List<string>(count);
        for (var i = 0; i < count; i++)
        {
            filters.Add(r.ReadString());
        }
        return filters;
    }

    /// <summary>The routes a node takes from the catalog: version 0, so any assertion by a running session wins over them.</summary>
    public static ClientRoutes FromCatalog(string clientId, byte[] data)
    {
        // An array of the exact size: a node holds the routes of every session, at rest or not.
        var filters = Decode(data);
        var entries = new RouteEntry[filters.Count];
        for (var i = 0; i < entries.Length; i++)
        {
            entries[i] = new RouteEntry(filters[i], false);
        }
        return new(clientId, 0, entries);
    }
}
