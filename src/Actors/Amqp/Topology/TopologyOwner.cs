using System.Collections.Immutable;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Persistence;
using Broker.Actors.Messages;

namespace Broker.Actors.Amqp.Topology;

/// <summary>Journaled when the owner starts and whenever membership changes: the uids of the members it saw.</summary>
public sealed record MembersSeen(IReadOnlyList<long> Uids) : IPersisted;

/// <summary>Journaled before an exclusive queue's <see cref="QueueAdded"/>: the connection actor the queue goes with.</summary>
public sealed record QueueOwnerRecorded(string Queue, IActorRef Owner) : IPersisted;

public sealed record TopologyOwnerSnapshot(TopologySnapshot Topology, IReadOnlyList<QueueOwnerRecorded> Owners, IReadOnlyList<long>? MembersSeen) : IPersisted;

/// <summary>Stop message of the topology owner when its shard moves: it stops once its writes are durable.</summary>
public sealed record TopologyHandOff
{
    public static readonly TopologyHandOff Instance = new();
}

/// <summary>
/// Sends every topology command (and a queue's <see cref="QueueUnused"/>) to the one owner entity of the cluster
/// (entity type <see cref="TopologyOwner.TypeName"/>), wherever sharding places it.
/// </summary>
public sealed class TopologyMessageExtractor() : Akka.Cluster.Sharding.HashCodeMessageExtractor(1)
{
    public override string? EntityId(object message) => message is ITopologyCommand or QueueUnused ? TopologyOwner.EntityName : null;
}

/// <summary>
/// The one place that decides which exchanges, queues and bindings exist (a single sharded entity, so it moves to a
/// survivor when its node fails). Each change is journaled, then sent to the <see cref="TopologyReplica"/> of every
/// member, then answered: versions are consecutive and continue across restarts of the owner.
/// <para>
/// A queue.delete first asks the queue entity to delete its content; until it answers, commands about that queue
/// wait (in order) while the owner goes on serving the others.
/// </para>
/// <para>
/// Transient definitions (non-durable exchanges and queues, exclusive queues, and the bindings that involve them)
/// are journaled like the others, so they survive the failure of any node, the owner's included. They must not
/// survive a restart of the whole cluster, as in RabbitMQ. The owner records the uids of the members it sees
/// (<see cref="MembersSeen"/>, on start and on every change of membership); a uid is new for every start of a
/// node. If none of the members up when the owner recovers was seen by the previous incarnation, no node lived
/// through the gap: the whole cluster restarted, and the owner deletes every transient definition. (A node that
/// joins and is the only survivor before the owner saw it join would be mistaken for a restart.)
/// </para>
/// </summary>
public sealed class TopologyOwner : UntypedPersistentActor, IWithTimers
{
    public const string TypeName = "amqp-topology";
    public const string EntityName = "topology";

    public static readonly TimeSpan DefaultQueueDeleteTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// An answer waits at most this long for the replicas: a member whose node died still counts until the cluster
    /// removes it, and changes must not stop meanwhile.
    /// </summary>
    public static readonly TimeSpan DefaultReplicaTimeout = TimeSpan.FromSeconds(2);

    private sealed record DeleteAnswered(string Queue, object Answer);

    private sealed record ReplicasLate(long Version);

    /// <summary>A queue whose content is being deleted; <see cref="ReplyTo"/> is the client's channel when it asked.</summary>
    private sealed class PendingDelete(IActorRef? replyTo, bool force, bool removed)
    {
        public readonly IActorRef? ReplyTo = replyTo;
        // Forced deletes (connection gone) drop the definition even if the queue never answers.
        public bool Force = force;
        // The definition is gone already (whole-cluster restart): only the content is left to delete.
        public readonly bool Removed = removed;
    }

    private readonly IActorRef _queueRegion;
    private readonly int _snapshotEvery;
    private readonly TimeSpan _deleteTimeout;
    private readonly IReadOnlyCollection<UniqueAddress>? _fixedMembers;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<Address, UniqueAddress> _members = [];
    private readonly Dictionary<Address, ActorSelection> _replicas = [];
    private readonly Dictionary<string, IActorRef> _owners = new(StringComparer.Ordinal);
    private readonly Dictionary<string, PendingDelete> _pending = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Queue<(object Command, IActorRef Sender)>> _waiting = new(StringComparer.Ordinal);
    private readonly TimeSpan _replicaTimeout;
    // The highest version each member's replica said it has (TopologyApplied).
    private readonly Dictionary<Address, long> _applied = [];
    // Answers that wait for every replica to have their version, oldest first.
    private readonly List<(long Version, Action Answer)> _awaitingReplicas = [];
    private TopologyView _view = TopologyView.Empty;
    private ImmutableSortedSet<long>? _membersSeen;
    private bool _ready;
    private int _sinceSnapshot;

    /// <param name="queueRegion">the shard region of the queue entities, asked to delete a queue's content.</param>
    /// <param name="members">
    /// the members to send changes to and to record, instead of following cluster membership (which is the
    /// default): tests use it to play a cluster.
    /// </param>
    /// <param name="replicaTimeout">how long an answer waits for the replicas to confirm its change (see <see cref="AfterReplicas"/>).</param>
    public TopologyOwner(IActorRef queueRegion, int snapshotEvery, TimeSpan queueDeleteTimeout, IReadOnlyCollection<UniqueAddress>? members, TimeSpan replicaTimeout)
    {
        _queueRegion = queueRegion;
        _snapshotEvery = snapshotEvery;
        _deleteTimeout = queueDeleteTimeout;
        _fixedMembers = members;
        _replicaTimeout = replicaTimeout;
    }

    public static Props Props(IActorRef queueRegion, int snapshotEvery, TimeSpan? queueDeleteTimeout = null, IReadOnlyCollection<UniqueAddress>? members = null,
        TimeSpan? replicaTimeout = null) =>
        Akka.Actor.Props.Create(() => new TopologyOwner(queueRegion, snapshotEvery, queueDeleteTimeout ?? DefaultQueueDeleteTimeout, members,
            replicaTimeout ?? DefaultReplicaTimeout));

    public override string PersistenceId => "amqp-topology";

    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PostStop()
    {
        if (_fixedMembers is null)
        {
            Cluster.Get(Context.System).Unsubscribe(Self);
        }
        base.PostStop();
    }

    protected override void OnRecover(object message)
    {
        switch (message)
        {
            case SnapshotOffer { Snapshot: TopologyOwnerSnapshot s }:
                _view = TopologyView.FromSnapshot(s.Topology);
                _owners.Clear();
                foreach (var o in s.Owners)
                {
                    _owners[o.Queue] = o.Owner;
                }
                _membersSeen = s.MembersSeen?.ToImmutableSortedSet();
                break;
            case RecoveryCompleted:
                OnRecovered();
                break;
            default:
                Apply(message);
                break;
        }
    }

    private void OnRecovered()
    {
        if (_fixedMembers is not null)
        {
            foreach (var m in _fixedMembers)
            {
                _members[m.Address] = m;
            }
            OnMembersKnown();
            return;
        }
        // Commands wait (stashed) for the first membership state: it decides whether the whole cluster restarted.
        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.MemberUp), typeof(ClusterEvent.MemberRemoved));
    }

    private void OnMembersKnown()
    {
        _ready = true;
        var current = _members.Values.Select(m => (long)m.Uid).ToImmutableSortedSet();
        var dropped = new HashSet<string>(StringComparer.Ordinal);
        if (_membersSeen is not null && !_membersSeen.Overlaps(current))
        {
            _log.Info("no member seen by the previous topology owner is up: the whole cluster restarted, transient exchanges and queues are deleted");
            // Journaled before the new members: a crash in between finds the old members again and drops again.
            var (changes, queues) = TopologyRules.DropTransient(_view);
            Commit(changes, [], null, null);
            dropped.UnionWith(queues);
            foreach (var q in queues)
            {
                // The queue entity journaled the definition too; commands about the name wait until it has let go.
                StartDelete(q, ifUnused: false, ifEmpty: false, replyTo: null, force: true, removed: true);
            }
        }
        RecordMembers();
        foreach (var (queue, owner) in _owners)
        {
            if (!dropped.Contains(queue))
            {
                // A connection on a node that is gone, or that stopped meanwhile, answers with Terminated.
                Context.Watch(owner);
            }
        }
        Stash.UnstashAll();
    }

    protected override void OnCommand(object message)
    {
        if (!_ready && message is not (ClusterEvent.CurrentClusterState or ClusterEvent.IMemberEvent or TopologyHandOff))
        {
            Stash.Stash();
            return;
        }
        switch (message)
        {
            case DeclareExchange d:
                Decide(TopologyRules.DeclareExchange(_view, d));
                break;
            case DeleteExchange d:
                Decide(TopologyRules.DeleteExchange(_view, d));
                break;
            case DeclareQueue d when IsBusy(d.Definition.Name, d):
                break;
            case DeclareQueue d:
                OnDeclareQueue(d);
                break;
            case DeleteQueue d when IsBusy(d.Name, d):
                break;
            case DeleteQueue d:
                OnDeleteQueue(d);
                break;
            case Bind b when !b.Binding.ToExchange && IsBusy(b.Binding.Destination, b):
                break;
            case Bind b:
                Decide(TopologyRules.Bind(_view, b));
                break;
            case Unbind u when !u.Binding.ToExchange && IsBusy(u.Binding.Destination, u):
                break;
            case Unbind u:
                Decide(TopologyRules.Unbind(_view, u));
                break;
            case QueueUnused u:
                // Only if still unused when the queue gets the delete: a consumer may have come since it said so.
                if (!_pending.ContainsKey(u.Queue) && _view.TryGetQueue(u.Queue, out _))
                {
                    StartDelete(u.Queue, ifUnused: true, ifEmpty: false, replyTo: null, force: false);
                }
                break;
            case ConnectionGone c:
                DeleteExclusive(_view.Queues.Where(q => q.ExclusiveOwner == c.ConnectionId).Select(q => q.Name).ToList());
                break;
            case Terminated t:
                DeleteExclusive(_owners.Where(o => o.Value.Equals(t.ActorRef)).Select(o => o.Key).ToList());
                break;
            case DeleteAnswered a:
                OnDeleteAnswered(a);
                break;
            case TopologySyncRequest s:
                if (s.Version != _view.Version)
                {
                    s.Replica.Tell(_view.ToSnapshot());
                }
                else
                {
                    // A check from a replica that is up to date: as good as a confirmation.
                    RecordApplied(s.Replica, s.Version);
                }
                break;
            case TopologyApplied a:
                RecordApplied(Sender, a.Version);
                break;
            case ReplicasLate late:
                AnswerAwaiting(late.Version);
                break;
            case ClusterEvent.CurrentClusterState state:
                foreach (var m in state.Members.Where(m => m.Status is MemberStatus.Up or MemberStatus.Leaving or MemberStatus.Exiting))
                {
                    _members[m.Address] = m.UniqueAddress;
                }
                var self = Cluster.Get(Context.System).SelfUniqueAddress;
                _members[self.Address] = self;
                if (_ready)
                {
                    RecordMembers();
                }
                else
                {
                    OnMembersKnown();
                }
                break;
            case ClusterEvent.MemberUp up:
                _members[up.Member.Address] = up.Member.UniqueAddress;
                if (_ready)
                {
                    RecordMembers();
                }
                break;
            case ClusterEvent.MemberRemoved removed:
                _members.Remove(removed.Member.Address);
                _replicas.Remove(removed.Member.Address);
                _applied.Remove(removed.Member.Address);
                AnswerAwaiting();
                if (_ready)
                {
                    RecordMembers();
                }
                break;
            case TopologyHandOff:
                DeferAsync(0, _ =>
                {
                    // The changes are journaled: their answers go now rather than never.
                    AnswerAwaiting(long.MaxValue);
                    Context.Stop(Self);
                });
                break;
            case SaveSnapshotSuccess s:
                DeleteMessages(s.Metadata.SequenceNr);
                DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1));
                break;
            case SaveSnapshotFailure f:
                _log.Warning(f.Cause, "topology snapshot failed");
                break;
            case DeleteMessagesFailure f:
                _log.Warning(f.Cause, "topology journal cleanup failed");
                break;
            case DeleteSnapshotsFailure f:
                _log.Warning(f.Cause, "topology snapshot cleanup failed");
                break;
            case DeleteMessagesSuccess or DeleteSnapshotsSuccess:
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    /// <summary>Whether a delete of <paramref name="queue"/> is under way; if so the command waits for its end.</summary>
    private bool IsBusy(string queue, object command)
    {
        if (!_pending.ContainsKey(queue))
        {
            return false;
        }
        if (!_waiting.TryGetValue(queue, out var waiting))
        {
            _waiting[queue] = waiting = new Queue<(object, IActorRef)>();
        }
        waiting.Enqueue((command, Sender));
        return true;
    }

    private void Decide(TopologyDecision decision)
    {
        if (decision.Refused is not null)
        {
            Sender.Tell(decision.Refused);
            return;
        }
        Commit(decision.Changes, [], Sender, version => new TopologyOk(version));
    }

    private void OnDeclareQueue(DeclareQueue d)
    {
        var recorded = _owners.GetValueOrDefault(d.Definition.Name);
        var decision = TopologyRules.DeclareQueue(_view, d, recorded, NewQueueName());
        if (decision.Refused is not null)
        {
            Sender.Tell(decision.Refused);
            return;
        }
        var queue = decision.Queue!;
        IReadOnlyList<object> before = decision.Changes.Count > 0 && queue.ExclusiveOwner is not null && d.Owner is not null
            ? [new QueueOwnerRecorded(queue.Name, d.Owner)]
            : [];
        Commit(decision.Changes, before, Sender, version => new QueueDeclared(queue, version));
    }

    private void OnDeleteQueue(DeleteQueue d)
    {
        if (TopologyRules.CheckDeleteQueue(_view, d) is { } refused)
        {
            Sender.Tell(refused);
            return;
        }
        if (!_view.TryGetQueue(d.Name, out _))
        {
            // RabbitMQ 3.x answers delete-ok with a count of 0 for a queue that does not exist.
            Sender.Tell(new QueueDeleted(d.Name, 0, _view.Version));
            return;
        }
        StartDelete(d.Name, d.IfUnused, d.IfEmpty, Sender, force: false);
    }

    private void DeleteExclusive(IReadOnlyList<string> queues)
    {
        foreach (var q in queues)
        {
            if (_pending.TryGetValue(q, out var pending))
            {
                // A conditional delete is under way: if the queue refuses it, the queue still goes.
                pending.Force = true;
            }
            else
            {
                StartDelete(q, ifUnused: false, ifEmpty: false, replyTo: null, force: true);
            }
        }
    }

    private void StartDelete(string queue, bool ifUnused, bool ifEmpty, IActorRef? replyTo, bool force, bool removed = false)
    {
        _pending[queue] = new PendingDelete(replyTo, force, removed);
        _queueRegion.Ask<object>(new DeleteQueueContent(queue, ifUnused, ifEmpty), _deleteTimeout)
            .PipeTo(Self, success: answer => new DeleteAnswered(queue, answer), failure: e => new DeleteAnswered(queue, e));
    }

    private void OnDeleteAnswered(DeleteAnswered a)
    {
        if (!_pending.Remove(a.Queue, out var pending))
        {
            return;
        }
        switch (a.Answer)
        {
            case var answer when pending.Removed:
                _log.Debug("content of dropped queue {0}: {1}", a.Queue, answer);
                break;
            case QueueContentDeleted deleted:
                RemoveQueue(a.Queue, pending.ReplyTo, deleted.MessageCount);
                break;
            case QueueDeleteRefused refused when pending.Force:
                _log.Debug("queue {0} refused a forced delete ({1}); asking again without conditions", a.Queue, refused.ReplyText);
                StartDelete(a.Queue, ifUnused: false, ifEmpty: false, pending.ReplyTo, force: true);
                return;
            case QueueDeleteRefused refused:
                pending.ReplyTo?.Tell(new TopologyRefused(TopologyRules.PreconditionFailed, refused.ReplyText));
                break;
            case var failure when pending.Force:
                _log.Warning("queue {0} did not answer its delete ({1}); its definition goes anyway", a.Queue, failure);
                RemoveQueue(a.Queue, pending.ReplyTo, 0);
                break;
            case var failure:
                _log.Warning("queue {0} did not answer its delete ({1})", a.Queue, failure);
                pending.ReplyTo?.Tell(new TopologyRefused(TopologyRules.NotFound,
                    $"NOT_FOUND - home node of queue '{a.Queue}' in vhost '/' is down or inaccessible"));
                break;
        }
        if (_waiting.Remove(a.Queue, out var waiting))
        {
            // Back through the mailbox in their order, behind the writes this answer started.
            foreach (var (command, sender) in waiting)
            {
                Self.Tell(command, sender);
            }
        }
    }

    private void RemoveQueue(string queue, IActorRef? replyTo, uint messageCount) =>
        Commit(TopologyRules.RemoveQueue(_view, queue), [], replyTo, version => new QueueDeleted(queue, messageCount, version));

    /// <summary>
    /// Journals <paramref name="before"/> and then one <see cref="TopologyChanged"/> per change at consecutive
    /// versions; once they are durable each change goes to every replica, then <paramref name="replyTo"/> gets its answer.
    /// </summary>
    private void Commit(IReadOnlyList<TopologyChange> changes, IReadOnlyList<object> before, IActorRef? replyTo, Func<long, object>? reply)
    {
        var events = new List<object>(before);
        var version = _view.Version;
        foreach (var c in changes)
        {
            events.Add(new TopologyChanged(++version, c));
        }
        if (events.Count == 0)
        {
            if (reply is not null && replyTo is not null)
            {
                // Nothing changed, but the version it names may still be on its way to the replicas.
                var answer = reply(_view.Version);
                AfterReplicas(_view.Version, () => replyTo.Tell(answer));
            }
            return;
        }
        PersistAll(events, e =>
        {
            Apply(e);
            if (e is TopologyChanged changed)
            {
                Broadcast(changed);
            }
        });
        DeferAsync(0, _ =>
        {
            if (reply is not null && replyTo is not null)
            {
                var answer = reply(_view.Version);
                AfterReplicas(_view.Version, () => replyTo.Tell(answer));
            }
            MaybeSnapshot(events.Count);
        });
    }

    /// <summary>
    /// Runs <paramref name="answer"/> once the replica of every member has <paramref name="version"/>, so that a client
    /// that got its declare-ok or bind-ok can publish through any node and be routed by the change; or after
    /// <see cref="_replicaTimeout"/>, whichever comes first. Answers keep their order.
    /// </summary>
    private void AfterReplicas(long version, Action answer)
    {
        if (_awaitingReplicas.Count == 0 && AllReplicasHave(version))
        {
            answer();
            return;
        }
        _awaitingReplicas.Add((version, answer));
        var late = new ReplicasLate(version);
        // Not restarted by later answers at the same version: the first one's wait stays bounded.
        if (!Timers.IsTimerActive(late))
        {
            Timers.StartSingleTimer(late, late, _replicaTimeout);
        }
    }

    private bool AllReplicasHave(long version)
    {
        foreach (var address in _members.Keys)
        {
            if (!_applied.TryGetValue(address, out var applied) || applied < version)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Answers those waiting whose version every replica has, or (<paramref name="lateUpTo"/>) that waited long enough.</summary>
    private void AnswerAwaiting(long lateUpTo = long.MinValue)
    {
        var done = 0;
        while (done < _awaitingReplicas.Count)
        {
            var (version, answer) = _awaitingReplicas[done];
            if (version > lateUpTo && !AllReplicasHave(version))
            {
                break;
            }
            if (version <= lateUpTo)
            {
                _log.Info("topology version {0}: answered before the replicas of {1} confirmed it", version,
                    string.Join(", ", _members.Keys.Where(a => !_applied.TryGetValue(a, out var v) || v < version)));
            }
            answer();
            done++;
        }
        _awaitingReplicas.RemoveRange(0, done);
    }

    /// <summary>A replica has every change up to <paramref name="version"/>: answers what waited for it.</summary>
    private void RecordApplied(IActorRef replica, long version)
    {
        // A replica on this node answers with a local path; the members are known by their full address.
        var address = replica.Path.Address.HasLocalScope ? ((ExtendedActorSystem)Context.System).Provider.DefaultAddress : replica.Path.Address;
        if (!_applied.TryGetValue(address, out var known) || known < version)
        {
            _applied[address] = version;
        }
        AnswerAwaiting();
    }

    private void Apply(object e)
    {
        switch (e)
        {
            case TopologyChanged c:
                if (c.Version != _view.Version + 1)
                {
                    _log.Warning("topology event {0} after {1}", c.Version, _view.Version);
                }
                _view = _view.Apply(c.Change).WithVersion(c.Version);
                if (c.Change is QueueRemoved removed)
                {
                    _owners.Remove(removed.Name);
                }
                break;
            case QueueOwnerRecorded o:
                _owners[o.Queue] = o.Owner;
                if (IsRecoveryFinished)
                {
                    Context.Watch(o.Owner);
                }
                break;
            case MembersSeen m:
                _membersSeen = [.. m.Uids];
                break;
        }
    }

    private void RecordMembers()
    {
        var current = _members.Values.Select(m => (long)m.Uid).ToImmutableSortedSet();
        if (_membersSeen is not null && _membersSeen.SetEquals(current))
        {
            return;
        }
        var seen = new MembersSeen([.. current]);
        Persist(seen, e =>
        {
            Apply(e);
            MaybeSnapshot(1);
        });
    }

    private void Broadcast(TopologyChanged changed)
    {
        foreach (var address in _members.Keys)
        {
            if (!_replicas.TryGetValue(address, out var replica))
            {
                _replicas[address] = replica = Context.ActorSelection(new RootActorPath(address) / "user" / TopologyReplica.Name);
            }
            replica.Tell(changed, Self);
        }
    }

    private void MaybeSnapshot(int events)
    {
        _sinceSnapshot += events;
        if (_sinceSnapshot >= _snapshotEvery)
        {
            _sinceSnapshot = 0;
            SaveSnapshot(new TopologyOwnerSnapshot(
                _view.ToSnapshot(),
                [.. _owners.Select(o => new QueueOwnerRecorded(o.Key, o.Value))],
                _membersSeen?.ToList()));
        }
    }

    /// <summary>A server-named queue, as RabbitMQ names them: "amq.gen-" and 22 URL-safe base64 characters.</summary>
    private static string NewQueueName() =>
        "amq.gen-" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(16)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
