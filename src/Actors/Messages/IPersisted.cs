namespace Broker.Actors.Messages;

/// <summary>
/// Marker for every type an entity writes to the journal or the snapshot store (events and snapshots): exactly these
/// carry the journal format version in their manifest (see <c>BrokerSerializer.JournalFormat</c>), because they are read
/// back by later builds. Messages that only cross nodes are read by a build of the same cluster and carry none.
/// </summary>
public interface IPersisted : IBrokerSerializable;
