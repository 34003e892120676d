using Akka.Actor;

namespace Broker.Actors.Routing;

/// <summary>
/// Collects the targets of one publish: which sessions match through a plain subscription and,
/// for shared subscriptions, the one member each group picked. Reused by its owner between publishes.
/// </summary>
public sealed class RouteCollector
{
    private readonly Dictionary<string, Target> _targets = new(StringComparer.Ordinal);

    public sealed class Target
    {
        public bool NonShared { get; internal set; }
        public List<string>? SharedFilters { get; internal set; }
    }

    public IReadOnlyDictionary<string, Target> Targets => _targets;

    public int Count => _targets.Count;

    public void Clear()
    {
        _targets.Clear();
        _byNode?.Clear();
    }

    // Targets hosted on other nodes, by the fan-out actor of their node (see MessageRouter.Route). Each list goes out in
    // a NodeDeliver, serialized later on remoting's thread: a new list per publish, never reused.
    private Dictionary<IActorRef, NodeBatch>? _byNode;

    internal sealed class NodeBatch
    {
        public List<NodeTarget> Targets = [];
        public long Bytes;
    }

    internal Dictionary<IActorRef, NodeBatch>? ByNode => _byNode;

    /// <summary>
    /// Adds a target for the node of <paramref name="fanOut"/>; once that node's targets reach <paramref name="maxBytes"/>
    /// (serialized, estimated) they are returned to be sent now, and the node starts a new list.
    /// </summary>
    internal List<NodeTarget>? AddRemote(IActorRef fanOut, NodeTarget target, long maxBytes)
    {
        _byNode ??= [];
        if (!_byNode.TryGetValue(fanOut, out var batch))
        {
            batch = new NodeBatch();
            _byNode[fanOut] = batch;
        }
        batch.Targets.Add(target);
        batch.Bytes += NodeDeliver.SizeOf(target);
        if (batch.Bytes < maxBytes)
        {
            return null;
        }
        var full = batch.Targets;
        batch.Targets = [];
        batch.Bytes = 0;
        return full;
    }

    internal void AddPlain(string clientId) => Get(clientId).NonShared = true;

    internal void AddShared(string clientId, string sharedFilter) =>
        (Get(clientId).SharedFilters ??= []).Add(sharedFilter);

    private Target Get(string clientId)
    {
        if (!_targets.TryGetValue(clientId, out var t))
        {
            t = new Target();
            _targets[clientId] = t;
        }
        return t;
    }
}

/// <summary>
/// Topic-filter trie mapping a published topic to the client IDs whose subscriptions match.
/// It stores client IDs, not actor references: delivery goes through the session shard region,
/// so the same table works whichever node hosts a session. Reads take a shared lock; writes an
/// exclusive one (subscription changes are rare next to publishes).
/// </summary>
public sealed class SubscriptionTrie
{
    private readonly ReaderWriterLockSlim _lock = new(LockRecursionPolicy.NoRecursion);
    private readonly Node _root = new();
    private int _count;

    /// <summary>One stack per thread: a publish must not allocate one, and matches on one thread never nest.</summary>
    [ThreadStatic]
    private static Stack<(Node, int)>? _matchStack;

    private sealed class Node
    {
        // Created with the first child: most nodes are leaves (one per device topic), and an empty dictionary is 80 bytes.
        public Dictionary<string, Node>? Children;
        public Node? Plus;
        public ClientSet HashSubscribers;   // filters ending in this node's "/#"
        public ClientSet Subscribers;       // filters ending exactly here
        public Dictionary<string, SharedGroup>? Shared;
        public Dictionary<string, SharedGroup>? HashShared;

        public bool IsEmpty =>
            (Children?.Count ?? 0) == 0 && Plus is null && HashSubscribers.Count == 0 &&
            Subscribers.Count == 0 && (Shared?.Count ?? 0) == 0 && (HashShared?.Count ?? 0) == 0;
    }

    /// <summary>
    /// The client IDs of one filter: one ID is held as itself, more in a set. Most filters have one subscriber (a
    /// device's own topic), and a set for one ID costs about 200 bytes a session at rest (a node keeps every session's
    /// filters, connected or not).
    /// </summary>
    private struct ClientSet
    {
        private object? _items;   // null, one string, or a HashSet<string> of two or more

        public readonly int Count => _items switch
        {
            null => 0,
            string => 1,
            _ => ((HashSet<string>)_items).Count,
        };

        public bool Add(string clientId)
        {
            switch (_items)
            {
                case null:
                    _items = clientId;
                    return true;
                case string one:
                    if (string.Equals(one, clientId, StringComparison.Ordinal))
                    {
                        return false;
                    }
                    _items = new HashSet<string>(StringComparer.Ordinal) { one, clientId };
                    return true;
                default:
                    return ((HashSet<string>)_items).Add(clientId);
            }
        }

        public bool Remove(string clientId)
        {
            switch (_items)
            {
                case null:
                    return false;
                case string one:
                    if (!string.Equals(one, clientId, StringComparison.Ordinal))
                    {
                        return false;
                    }
                    _items = null;
                    return true;
                default:
                    var set = (HashSet<string>)_items;
                    if (!set.Remove(clientId))
                    {
                        return false;
                    }
                    if (set.Count == 1)
                    {
                        foreach (var last in set)
                        {
                            _items = last;
                        }
                    }
                    return true;
            }
        }

        public readonly void AddTo(RouteCollector collector)
        {
            switch (_items)
            {
                case null:
                    return;
                case string one:
                    collector.AddPlain(one);
                    return;
                default:
                    foreach (var s in (HashSet<string>)_items)
                    {
                        collector.AddPlain(s);
                    }
                    return;
            }
        }
    }

    private sealed class SharedGroup(string sharedFilter)
    {
        public readonly string SharedFilter = sharedFilter;
        public readonly List<string> Members = [];
        public readonly HashSet<string> Disconnected = new(StringComparer.Ordinal);
        private int _next;

        /// <summary>Round robin over the connected members; over all of them when none is connected.</summary>
        public string Pick()
        {
            var next = (uint)Interlocked.Increment(ref _next);
            var connected = Members.Count - Disconnected.Count;
            if (Disconnected.Count == 0 || connected <= 0)
            {
                return Members[(int)(next % (uint)Members.Count)];
            }
            var k = (int)(next % (uint)connected);
            foreach (var member in Members)
            {
                if (!Disconnected.Contains(member) && k-- == 0)
                {
                    return member;
                }
            }
            return Members[0];
        }
    }

    /// <summary>Number of (client, filter) entries in the trie.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>
    /// Adds a subscription; <paramref name="filter"/> may be a <c>$share/</c> filter, in which case
    /// <paramref name="connected"/> says whether the member can take messages now. Idempotent.
    /// </summary>
    public void Add(string clientId, string filter, bool connected = true)
    {
        var isShared = TopicFilter.TryParseShared(filter, out var group, out var inner);
        var path = isShared ? inner : filter;
        _lock.EnterWriteLock();
        try
        {
            var (node, hash) = Walk(path, create: true)!.Value;
            bool added;
            if (isShared)
            {
                var groups = hash ? node.HashShared ??= new(StringComparer.Ordinal) : node.Shared ??= new(StringComparer.Ordinal);
                if (!groups.TryGetValue(group, out var g))
                {
                    g = new SharedGroup(filter);
                    groups[group] = g;
                }
                added = !g.Members.Contains(clientId);
                if (added)
                {
                    g.Members.Add(clientId);
                }
                if (!connected)
                {
                    g.Disconnected.Add(clientId);
                }
            }
            else
            {
                added = hash ? node.HashSubscribers.Add(clientId) : node.Subscribers.Add(clientId);
            }
            if (added)
            {
                _count++;
            }
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    /// <summary>Removes a subscription; unknown entries are ignored.</summary>
    public void Remove(string clientId, string filter)
    {
        var isShared = TopicFilter.TryParseShared(filter, out var group, out var inner);
        var path = isShared ? inner : filter;
        _lock.EnterWriteLock();
        try
        {
            var found = Walk(path, create: false);
            if (found is null)
            {
                return;
            }
            var (node, hash) = found.Value;
            bool removed;
            if (isShared)
            {
                var groups = hash ? node.HashShared : node.Shared;
                removed = groups is not null && groups.TryGetValue(group, out var g) && g.Members.Remove(clientId);
                if (removed)
                {
                    groups![group].Disconnected.Remove(clientId);
                }
                if (removed && groups![group].Members.Count == 0)
                {
                    groups.Remove(group);
                }
            }
            else
            {
                removed = hash ? node.HashSubscribers.Remove(clientId) : node.Subscribers.Remove(clientId);
            }
            if (removed)
            {
                _count--;
                Prune(path);
            }
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    /// <summary>Marks a shared-subscription member connected or not; shared groups prefer connected members.</summary>
    public void SetConnected(string clientId, string sharedFilter, bool connected)
    {
        if (!TopicFilter.TryParseShared(sharedFilter, out var group, out var inner))
        {
            return;
        }
        _lock.EnterWriteLock();
        try
        {
            var found = Walk(inner, create: false);
            if (found is null)
            {
                return;
            }
            var (node, hash) = found.Value;
            var groups = hash ? node.HashShared : node.Shared;
            if (groups is not null && groups.TryGetValue(group, out var g) && g.Members.Contains(clientId))
            {
                if (connected)
                {
                    g.Disconnected.Remove(clientId);
                }
                else
                {
                    g.Disconnected.Add(clientId);
                }
            }
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    /// <summary>Adds every matching target of <paramref name="topic"/> to <paramref name="collector"/>.</summary>
    public void Match(string topic, RouteCollector collector)
    {
        var dollar = topic.Length > 0 && topic[0] == '$';
        // A topic's depth is the client's to choose: an explicit stack, so no depth can overflow the thread's.
        var pending = _matchStack ??= new Stack<(Node, int)>();
        pending.Clear();
        _lock.EnterReadLock();
        try
        {
            pending.Push((_root, 0));
            while (pending.TryPop(out var entry))
            {
                MatchLevel(entry.Item1, entry.Item2, topic, pending, collector, dollar);
            }
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    /// <summary>Matches the level of <paramref name="topic"/> starting at <paramref name="start"/> below <paramref name="node"/>.</summary>
    private void MatchLevel(Node node, int start, string topic, Stack<(Node, int)> pending, RouteCollector collector, bool dollar)
    {
        // A '$' topic is not matched by a wildcard at its first level (§4.7.2); only the root is at that level.
        var wildcardsMatch = !(dollar && ReferenceEquals(node, _root));
        // A '#' below this node matches the rest of the topic, including the parent level itself.
        if (wildcardsMatch)
        {
            AddAll(in node.HashSubscribers, node.HashShared, collector);
        }
        var end = topic.IndexOf('/', start);
        if (end < 0)
        {
            end = topic.Length;
        }
        var level = topic.AsSpan(start, end - start);
        if (node.Children is { } children && children.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(level, out var child))
        {
            Descend(child, end, topic, pending, collector);
        }
        if (node.Plus is not null && wildcardsMatch)
        {
            Descend(node.Plus, end, topic, pending, collector);
        }
    }

    private static void Descend(Node child, int end, string topic, Stack<(Node, int)> pending, RouteCollector collector)
    {
        if (end == topic.Length)
        {
            AddAll(in child.Subscribers, child.Shared, collector);
            // "a/#" matches "a": the child's hash subscribers match the parent level.
            AddAll(in child.HashSubscribers, child.HashShared, collector);
        }
        else
        {
            pending.Push((child, end + 1));
        }
    }

    private static void AddAll(in ClientSet subscribers, Dictionary<string, SharedGroup>? shared, RouteCollector collector)
    {
        subscribers.AddTo(collector);
        if (shared is not null)
        {
            foreach (var g in shared.Values)
            {
                collector.AddShared(g.Pick(), g.SharedFilter);
            }
        }
    }

    /// <summary>
    /// Walks the filter's levels. A trailing '#' is stored on the node of the level before it
    /// (flag <c>hash</c>), so "a/#" lives on node "a" and matches "a" and everything below.
    /// </summary>
    private (Node Node, bool Hash)? Walk(string filter, bool create)
    {
        var node = _root;
        var levels = filter.Split('/');
        for (var i = 0; i < levels.Length; i++)
        {
            var level = levels[i];
            if (level == "#" && i == levels.Length - 1)
            {
                return (node, true);
            }
            Node? next;
            if (level == "+")
            {
                next = node.Plus;
                if (next is null && create)
                {
                    next = node.Plus = new Node();
                }
            }
            else
            {
                next = node.Children?.GetValueOrDefault(level);
                if (next is null && create)
                {
                    next = new Node();
                    (node.Children ??= new(StringComparer.Ordinal))[level] = next;
                }
            }
            if (next is null)
            {
                return null;
            }
            node = next;
        }
        return (node, false);
    }

    /// <summary>
    /// Removes the empty nodes on the filter's path, deepest first. The path is recorded on the way down
    /// instead of recursing, since a filter's depth is the client's to choose.
    /// </summary>
    private void Prune(string filter)
    {
        var levels = filter.Split('/');
        var depth = levels[^1] == "#" ? levels.Length - 1 : levels.Length;
        var path = new Node[depth + 1];
        path[0] = _root;
        var reached = 0;
        while (reached < depth)
        {
            var node = path[reached];
            var level = levels[reached];
            var next = level == "+" ? node.Plus : node.Children?.GetValueOrDefault(level);
            if (next is null)
            {
                break;
            }
            path[++reached] = next;
        }
        for (var i = reached; i > 0 && path[i].IsEmpty; i--)
        {
            var level = levels[i - 1];
            if (level == "+")
            {
                path[i - 1].Plus = null;
            }
            else
            {
                path[i - 1].Children!.Remove(level);
            }
        }
    }
}
