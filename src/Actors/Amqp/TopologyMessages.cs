using Akka.Actor;
using Broker.Actors.Messages;

namespace Broker.Actors.Amqp;

/// <summary>The four exchange types of AMQP 0.9.1.</summary>
public enum ExchangeKind : byte
{
    Direct,
    Fanout,
    Topic,
    Headers,
}

public sealed record ExchangeDefinition(string Name, ExchangeKind Kind, bool Durable, bool AutoDelete, bool Internal);

/// <summary>
/// One binding from exchange <paramref name="Source"/> to a queue, or to an exchange when
/// <paramref name="ToExchange"/> is set. <paramref name="Arguments"/> is the binding's argument table in
/// wire encoding (empty when none): a headers exchange matches on it, and two bindings are the same binding
/// only when these bytes are equal too.
/// </summary>
public sealed record BindingDefinition(string Source, string Destination, bool ToExchange, string RoutingKey, byte[] Arguments)
{
    public bool Equals(BindingDefinition? other) =>
        other is not null && Source == other.Source && Destination == other.Destination && ToExchange == other.ToExchange &&
        RoutingKey == other.RoutingKey && Arguments.AsSpan().SequenceEqual(other.Arguments);

    public override int GetHashCode() => HashCode.Combine(Source, Destination, ToExchange, RoutingKey, Arguments.Length);
}

/// <summary>
/// Every message for the topology owner: the single sharded entity that decides and journals which
/// exchanges, queues and bindings exist, and sends each change to every node's topology replica.
/// </summary>
public interface ITopologyCommand : IBrokerSerializable;

/// <summary>exchange.declare; answers <see cref="TopologyOk"/> or <see cref="TopologyRefused"/>.</summary>
public sealed record DeclareExchange(ExchangeDefinition Definition, bool Passive) : ITopologyCommand;

/// <summary>exchange.delete; answers <see cref="TopologyOk"/> or <see cref="TopologyRefused"/>.</summary>
public sealed record DeleteExchange(string Name, bool IfUnused) : ITopologyCommand;

/// <summary>
/// queue.declare. <paramref name="Owner"/> is the declaring connection's actor, watched when the queue is
/// exclusive so the queue goes when the connection does. Answers <see cref="QueueDeclared"/> or
/// <see cref="TopologyRefused"/>. The queue entity itself is created by the declaring channel afterwards
/// with <see cref="EnsureQueue"/>.
/// </summary>
public sealed record DeclareQueue(QueueDefinition Definition, bool Passive, IActorRef? Owner) : ITopologyCommand;

public sealed record QueueDeclared(QueueDefinition Definition, long Version) : IBrokerSerializable;

/// <summary>
/// queue.delete; the owner asks the queue entity to delete its content, then drops the definition and its bindings.
/// Answers <see cref="QueueDeleted"/> or <see cref="TopologyRefused"/>. With <paramref name="ConnectionId"/> set, an
/// exclusive queue of another connection is refused with 405.
/// </summary>
public sealed record DeleteQueue(string Name, bool IfUnused, bool IfEmpty, string? ConnectionId = null) : ITopologyCommand;

public sealed record QueueDeleted(string Name, uint MessageCount, long Version) : IBrokerSerializable;

/// <summary>
/// queue.bind and exchange.bind; answers <see cref="TopologyOk"/> or <see cref="TopologyRefused"/>. With
/// <paramref name="ConnectionId"/> set, binding an exclusive queue of another connection is refused with 405.
/// </summary>
public sealed record Bind(BindingDefinition Binding, string? ConnectionId = null) : ITopologyCommand;

/// <summary>queue.unbind and exchange.unbind; answers <see cref="TopologyOk"/> or <see cref="TopologyRefused"/>.</summary>
public sealed record Unbind(BindingDefinition Binding) : ITopologyCommand;

/// <summary>A connection closed: its exclusive queues are deleted.</summary>
public sealed record ConnectionGone(string ConnectionId) : ITopologyCommand;

/// <summary>
/// Sent by a replica that missed a change or just started, and now and then as a check: the owner answers with a
/// <see cref="TopologySnapshot"/> unless its version equals <paramref name="Version"/>, the replica's.
/// </summary>
public sealed record TopologySyncRequest(IActorRef Replica, long Version = -1) : ITopologyCommand;

/// <summary>
/// A replica's answer to each change and snapshot from the owner: it has every change up to <paramref name="Version"/>.
/// The owner answers a command once the replica of every member has its change (or after a timeout), so a publish
/// on any node after the client got declare-ok or bind-ok routes by it.
/// </summary>
public sealed record TopologyApplied(long Version) : IBrokerSerializable;

/// <summary>
/// The change was applied at <paramref name="Version"/>. The asking channel waits until its node's replica
/// has reached that version before it answers the client, so a publish right after declare-ok sees it.
/// </summary>
public sealed record TopologyOk(long Version) : IBrokerSerializable;

/// <summary>A channel error (404, 403, 405, 406) to close the asking channel with.</summary>
public sealed record TopologyRefused(ushort ReplyCode, string ReplyText) : IBrokerSerializable;

/// <summary>The whole topology at one version (built-in exchanges left out: they always exist); a replica replaces its view with it.</summary>
public sealed record TopologySnapshot(
    long Version,
    IReadOnlyList<ExchangeDefinition> Exchanges,
    IReadOnlyList<QueueDefinition> Queues,
    IReadOnlyList<BindingDefinition> Bindings) : IBrokerSerializable;

/// <summary>
/// One change, sent by the owner to every replica in version order (and the event the owner journals). A replica
/// that sees a gap asks for a snapshot.
/// </summary>
public sealed record TopologyChanged(long Version, TopologyChange Change) : IPersisted;

public abstract record TopologyChange;

public sealed record ExchangeAdded(ExchangeDefinition Exchange) : TopologyChange;

/// <summary>The exchange and every binding from it or to it are gone.</summary>
public sealed record ExchangeRemoved(string Name) : TopologyChange;

public sealed record QueueAdded(QueueDefinition Queue) : TopologyChange;

/// <summary>The queue and every binding to it are gone.</summary>
public sealed record QueueRemoved(string Name) : TopologyChange;

public sealed record BindingAdded(BindingDefinition Binding) : TopologyChange;

public sealed record BindingRemoved(BindingDefinition Binding) : TopologyChange;
