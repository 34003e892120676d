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

    public TopicNode Add(string[] words, int i, BindingDefinition binding)
    {
        if (i == words.Length)
        {
            return new TopicNode(_words, _star, _hash, _bindings.Add(binding));
        }
        var word = words[i];
        return word switch
        {
            "*" => new TopicNode(_words, (_star ?? Empty).Add(words, i + 1, binding), _hash, _bindings),
            "#" => new TopicNode(_words, _star, (_hash ?? Empty).Add(words, i + 1, binding), _bindings),
            _ => new TopicNode(_words.SetItem(word, _words.GetValueOrDefault(word, Empty).Add(words, i + 1, binding)), _star, _hash, _bindings),
        };
    }

    /// <summary>The trie without <paramref name="binding"/>; null when nothing is left, so empty branches are pruned.</summary>
    public TopicNode? Remove(string[] words, int i, BindingDefinition binding)
    {
        TopicNode next;
        if (i == words.Length)
        {
            next = new TopicNode(_words, _star, _hash, _bindings.Remove(binding));
        }
        else
        {
            var word = words[i];
            var child = word switch
            {
                "*" => _star,
                "#" => _hash,
                _ => _words.GetValueOrDefault(word),
            };
            if (child is null)
            {
                return this;
            }
            var changed = child.Remove(words, i + 1, binding);
            next = word switch
            {
                "*" => new TopicNode(_words, changed, _hash, _bindings),
                "#" => new TopicNode(_words, _star, changed, _bindings),
                _ => new TopicNode(changed is null ? _words.Remove(word) : _words.SetItem(word, changed), _star, _hash, _bindings),
            };
        }
        return next.IsEmpty ? null : next;
    }

    public void Match(string[] words, int i, RouteContext context)
    {
        if (i == words.Length)
        {
            foreach (var b in _bindings)
            {
                context.Hit(b);
            }
            // "#" at the end also matches zero words.
            _hash?.Match(words, i, context);
            return;
        }
        if (_words.TryGetValue(words[i], out var child))
        {
            child.Match(words, i + 1, context);
        }
        _star?.Match(words, i + 1, context);
        if (_hash is not null)
        {
            for (var j = i; j <= words.Length; j++)
            {
                _hash.Match(words, j, context);
            }
        }
    }
}
