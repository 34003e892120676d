using System.Buffers;

namespace Broker.Edge.Hosting;

/// <summary>
/// The receiving side of a client socket, shared by the MQTT and AMQP read loops: bytes received and not yet consumed,
/// in one buffer rented from the shared pool only while such bytes exist. With nothing held, <see cref="ReceiveAsync"/>
/// waits for data with a zero-byte receive, so an idle connection holds no buffer; the read loop awaits it itself (no
/// state machine of this class stays parked), hands the result to <see cref="Commit"/>, frames what
/// <see cref="Buffered"/> holds and gives back what it consumed with <see cref="Consume"/>. One read loop at a time.
/// </summary>
internal sealed class SocketInput(ClientLink link, Broker.Actors.Messages.ProtocolCounters counters, SocketOutput output)
{
    /// <summary>First buffer rented when data arrives; it grows (doubling) only for a frame that does not fit.</summary>
    private const int BufferSize = 4096;

    /// <summary>Room a receive asks for at least; less than that left at the end moves the unconsumed bytes to the front.</summary>
    private const int MinimumReadSize = 1024;

    private byte[]? _array;
    private int _start;
    private int _end;
    private bool _waiting;
    private bool _ready;

    /// <summary>No unconsumed byte is held (and no buffer).</summary>
    public bool IsEmpty => _end == _start;

    /// <summary>The bytes received and not consumed yet; valid until the next <see cref="Consume"/> or receive.</summary>
    public ReadOnlySequence<byte> Buffered => _array is null ? ReadOnlySequence<byte>.Empty : new(_array, _start, _end - _start);

    /// <summary>
    /// With no byte held (and no buffer), waits until the socket has data or the peer closed; otherwise receives into
    /// the free end of the buffer (renting, compacting or growing it first). Pass the result to <see cref="Commit"/>.
    /// </summary>
    public ValueTask<int> ReceiveAsync(CancellationToken ct)
    {
        if (IsEmpty && !_ready)
        {
            _waiting = true;
            return link.ReceiveAsync(Memory<byte>.Empty, ct);
        }
        _ready = false;
        return link.ReceiveAsync(FreeSpace(), ct);
    }

    /// <summary>
    /// Takes the result of <see cref="ReceiveAsync"/>: false when the peer closed. After a wait for data nothing new is
    /// buffered yet; the next <see cref="ReceiveAsync"/> receives it.
    /// </summary>
    public bool Commit(int received)
    {
        if (_waiting)
        {
            _waiting = false;
            _ready = true;
            return true;
        }
        if (received == 0)
        {
            return false;
        }
        _end += received;
        counters.BytesReceived(received);
        output.Received();
        return true;
    }

    /// <summary>Drops the bytes before <paramref name="consumed"/>, a position of <see cref="Buffered"/>; with none left the buffer goes back to the pool.</summary>
    public void Consume(SequencePosition consumed)
    {
        var buffered = Buffered;
        _start += (int)buffered.Slice(buffered.Start, consumed).Length;
        if (_start == _end)
        {
            Release();
        }
    }

    /// <summary>Returns the buffer to the pool, dropping what it holds (the read loop ended).</summary>
    public void Release()
    {
        if (_array is not null)
        {
            ArrayPool<byte>.Shared.Return(_array);
            _array = null;
        }
        _start = 0;
        _end = 0;
    }

    private Memory<byte> FreeSpace()
    {
        if (_array is null)
        {
            _array = ArrayPool<byte>.Shared.Rent(BufferSize);
            _start = 0;
            _end = 0;
        }
        if (_array.Length - _end >= MinimumReadSize)
        {
            return _array.AsMemory(_end);
        }
        var held = _end - _start;
        if (_array.Length - held >= MinimumReadSize)
        {
            // Room enough once the unconsumed tail moves to the front.
            _array.AsSpan(_start, held).CopyTo(_array);
        }
        else
        {
            // A frame larger than the buffer: double it. The read loops refuse a frame whose header announces more than
            // their limit, so the buffer never grows past about twice that limit.
            var larger = ArrayPool<byte>.Shared.Rent(_array.Length * 2);
            _array.AsSpan(_start, held).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_array);
            _array = larger;
        }
        _start = 0;
        _end = held;
        return _array.AsMemory(_end);
    }
}
