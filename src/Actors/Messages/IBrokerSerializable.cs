namespace Broker.Actors.Messages;

/// <summary>
/// Marker for every message that is journaled or may cross nodes; bound to <c>BrokerSerializer</c>
/// in cluster.hocon so that no CLR type name is ever written to the journal or the wire.
/// </summary>
public interface IBrokerSerializable;
