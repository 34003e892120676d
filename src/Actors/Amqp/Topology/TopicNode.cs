using System.Collections.Immutable;

namespace Broker.Actors.Amqp.Topology;

/// <summary>
/// The binding keys of one topic exchange as an immutable trie of words, as RabbitMQ keeps them: a publish
/// walks one path per matching word instead of testing every binding, and a change copies only the nodes on
/// its key's path, so views before and after share the rest.
/// </summary>
internal sealed class TopicNode
{
    public static readonly TopicNode Empty = new(ImmutableDictionary.Create<string, TopicNode>(StringComparer.Ordinal), null, null, []);

    private readonly ImmutableDictionary<string, TopicNode> _words;
    private readonly TopicNode? _star;
    private readonly TopicNode? _hash;
    private readonly ImmutableHashSet<BindingDefinition> _bindings;

    /// <summary>One stack per thread: a publish must not allocate one, and matches on one thread never nest.</summary>
    [ThreadStatic]
    private static Stack<(TopicNode, int)>? _matchStack;

    private TopicNode(ImmutableDictionary<string, TopicNode> words, TopicNode? star, TopicNode? hash, ImmutableHashSet<BindingDefinition> bindings)
    {
        _words = words;
        _star = star;
        _hash = hash;
        _bindings = bindings;
    }

    private bool IsEmpty => _bindings.IsEmpty && _words.IsEmpty && _star is null && _hash is null;

    /// <summary>
    /// Words of a routing or binding key. RabbitMQ treats the empty key as no words at all (so "#" matches it
    /// and "*" does not), and keeps empty words between dots.
    /// </summary>
    public static string[] Split(string key) => key.Length == 0 ? [] : key.Split('.');

    /// <summary>
    /// The trie with <paramref name="binding"/> added. The path is collected on the way down and copied on the way
    /// up, without recursion: a key's depth is the client's to choose.
    /// </summary>
    public TopicNode Add(string[] words, BindingDefinition binding)
    {
        var path = new TopicNode[words.Length + 1];
        path[0] = this;
        for (var i = 0; i < words.Length; i++)
        {
            path[i + 1] = path[i].Child(words[i]) ?? Empty;
        }
        var last = path[^1];
        var node = new TopicNode(last._words, last._star, last._hash, last._bindings.Add(binding));
        for (var i = words.Length - 1; i >= 0; i--)
        {
            node = path[i].WithChild(words[i], node);
        }
        return node;
    }

    /// <summary>The trie without <paramref name="binding"/>; null when nothing is left, so empty branches are pruned.</summary>
    public TopicNode? Remove(string[] words, BindingDefinition binding)
    {
        var path = new TopicNode[words.Length + 1];
        path[0] = this;
        for (var i = 0; i < words.Length; i++)
        {
            var child = path[i].Child(words[i]);
            if (child is null)
            {
                return this;
            }
            path[i + 1] = child;
        }
        var last = path[^1];
        var node = NullIfEmpty(new TopicNode(last._words, last._star, last._hash, last._bindings.Remove(binding)));
        for (var i = words.Length - 1; i >= 0; i--)
        {
            node = NullIfEmpty(path[i].WithChild(words[i], node));
        }
        return node;
    }

    /// <summary>
    /// Hits every binding whose key matches <paramref name="words"/>. Walks with an explicit stack, and once a "#"
    /// is met visits each (node, word index) once: "#.#.#…" against a long key would otherwise follow
    /// exponentially many paths to the same places.
    /// </summary>
    public void Match(string[] words, RouteContext context)
    {
        var pending = _matchStack ??= new Stack<(TopicNode, int)>();
        pending.Clear();
        HashSet<(TopicNode, int)>? seen = null;
        pending.Push((this, 0));
        while (pending.TryPop(out var entry))
        {
            var (node, i) = entry;
            if (i == words.Length)
            {
                foreach (var b in node._bindings)
                {
                    context.Hit(b);
                }
                // "#" at the end also matches zero words.
                if (node._hash is not null)
                {
                    Visit(node._hash, i, pending, ref seen);
                }
                continue;
            }
            if (node._words.TryGetValue(words[i], out var child))
            {
                Visit(child, i + 1, pending, ref seen);
            }
            if (node._star is not null)
            {
                Visit(node._star, i + 1, pending, ref seen);
            }
            if (node._hash is not null)
            {
                // Only a "#" lets two paths reach the same node at the same word: from here on, remember the visits.
                seen ??= [];
                for (var j = i; j <= words.Length; j++)
                {
                    Visit(node._hash, j, pending, ref seen);
                }
            }
        }
    }

    private static void Visit(TopicNode node, int i, Stack<(TopicNode, int)> pending, ref HashSet<(TopicNode, int)>? seen)
    {
        if (seen is null || seen.Add((node, i)))
        {
            pending.Push((node, i));
        }
    }

    private TopicNode? Child(string word) => word switch
    {
        "*" => _star,
        "#" => _hash,
        _ => _words.GetValueOrDefault(word),
    };

    private TopicNode WithChild(string word, TopicNode? child) => word switch
    {
        "*" => new TopicNode(_words, child, _hash, _bindings),
        "#" => new TopicNode(_words, _star, child, _bindings),
        _ => new TopicNode(child is null ? _words.Remove(word) : _words.SetItem(word, child), _star, _hash, _bindings),
    };

    private static TopicNode? NullIfEmpty(TopicNode node) => node.IsEmpty ? null : node;
}
