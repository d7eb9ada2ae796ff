using System.Buffers.Binary;

namespace CovidFunctions.Dicom.IO;

/// <summary>
/// A forward reader over a stream with its own buffer and little/big-endian primitives. Tracks the absolute position
/// (plus a base offset for streams that start mid-file), skips by seeking when the stream can seek, and never
/// allocates more than the bytes that actually arrive.
/// </summary>
internal sealed class BufferedDicomStream : IDisposable
{
    private const int BufferSize = 32 * 1024;
    private const int LargeChunk = 1 << 20;

    private readonly Stream _stream;
    private readonly byte[] _buffer;
    private readonly long _streamLength;
    private int _pos;
    private int _len;
    private long _bufferStart;
    private bool _eof;
    private bool _disposed;

    public BufferedDicomStream(Stream stream, long baseOffset = 0)
    {
        _stream = stream;
        _buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(BufferSize);
        CanSeek = stream.CanSeek;
        _streamLength = CanSeek ? stream.Length : -1;
        _bufferStart = CanSeek ? stream.Position : baseOffset;
    }

    /// <summary>True when the stream can seek (lengths can be checked against the end and values skipped).</summary>
    public bool CanSeek { get; }

    /// <summary>The absolute position of the next byte.</summary>
    public long Position => _bufferStart + _pos;

    /// <summary>The number of bytes left when known, otherwise <see cref="long.MaxValue"/>.</summary>
    public long Remaining => CanSeek ? _streamLength - Position : long.MaxValue;

    /// <summary>Bytes currently buffered and unread.</summary>
    public int Buffered => _len - _pos;

    /// <summary>The buffered bytes from the current position.</summary>
    public ReadOnlySpan<byte> Span => new(_buffer, _pos, _len - _pos);

    /// <summary>Makes at least <paramref name="count"/> (≤ buffer size) bytes available; false at end of stream.</summary>
    public bool Ensure(int count)
    {
        if (_len - _pos >= count)
        {
            return true;
        }

        return Fill(count);
    }

    /// <summary>True when no byte is left.</summary>
    public bool AtEnd => _pos >= _len && !Fill(1);

    public void Advance(int count) => _pos += count;

    public ushort PeekUInt16(int offset, bool bigEndian) => bigEndian
        ? BinaryPrimitives.ReadUInt16BigEndian(_buffer.AsSpan(_pos + offset))
        : BinaryPrimitives.ReadUInt16LittleEndian(_buffer.AsSpan(_pos + offset));

    public uint PeekUInt32(int offset, bool bigEndian) => bigEndian
        ? BinaryPrimitives.ReadUInt32BigEndian(_buffer.AsSpan(_pos + offset))
        : BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(_pos + offset));

    public byte PeekByte(int offset) => _buffer[_pos + offset];

    /// <summary>Copies exactly destination.Length bytes; false (with what was read consumed) at end of stream.</summary>
    public bool ReadExactly(Span<byte> destination)
    {
        var available = _len - _pos;
        if (available >= destination.Length)
        {
            _buffer.AsSpan(_pos, destination.Length).CopyTo(destination);
            _pos += destination.Length;
            return true;
        }

        _buffer.AsSpan(_pos, available).CopyTo(destination);
        _pos = _len;
        var done = available;
        if (destination.Length - done >= BufferSize)
        {
            // Large reads go straight into the destination.
            while (done < destination.Length)
            {
                var n = _stream.Read(destination[done..]);
                if (n <= 0)
                {
                    _bufferStart += _len + (done - available);
                    _pos = _len = 0;
                    _eof = true;
                    return false;
                }

                done += n;
            }

            _bufferStart += _len + (done - available);
            _pos = _len = 0;
            return true;
        }

        while (done < destination.Length)
        {
            if (!Fill(1))
            {
                return false;
            }

            var take = Math.Min(_len - _pos, destination.Length - done);
            _buffer.AsSpan(_pos, take).CopyTo(destination[done..]);
            _pos += take;
            done += take;
        }

        return true;
    }

    /// <summary>
    /// Reads <paramref name="length"/> bytes into a new array without trusting the length: for unseekable streams the
    /// array grows only as data arrives. Null at end of stream.
    /// </summary>
    public byte[]? ReadArray(long length)
    {
        if (length > Array.MaxLength)
        {
            return null;
        }

        if (length <= LargeChunk || CanSeek)
        {
            var result = GC.AllocateUninitializedArray<byte>((int)length);
            return ReadExactly(result) ? result : null;
        }

        var chunk = new byte[LargeChunk];
        using var collected = new MemoryStream();
        var left = length;
        while (left > 0)
        {
            var take = (int)Math.Min(left, chunk.Length);
            if (!ReadExactly(chunk.AsSpan(0, take)))
            {
                return null;
            }

            collected.Write(chunk, 0, take);
            left -= take;
        }

        return collected.ToArray();
    }

    /// <summary>Skips <paramref name="count"/> bytes; false when the stream ends first.</summary>
    public bool Skip(long count)
    {
        var available = _len - _pos;
        if (count <= available)
        {
            _pos += (int)count;
            return true;
        }

        if (CanSeek)
        {
            var target = Position + count;
            if (target > _streamLength)
            {
                return false;
            }

            _stream.Seek(target, SeekOrigin.Begin);
            _bufferStart = target;
            _pos = _len = 0;
            _eof = false;
            return true;
        }

        count -= available;
        _pos = _len;
        while (count > 0)
        {
            if (!Fill(1))
            {
                return false;
            }

            var take = (int)Math.Min(count, _len - _pos);
            _pos += take;
            count -= take;
        }

        return true;
    }

    /// <summary>Returns the buffer to the pool.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            System.Buffers.ArrayPool<byte>.Shared.Return(_buffer);
        }
    }

    private bool Fill(int count)
    {
        if (_eof && _len - _pos < count)
        {
            return false;
        }

        // Compact: keep unread bytes at the front.
        var unread = _len - _pos;
        if (_pos > 0)
        {
            if (unread > 0)
            {
                Buffer.BlockCopy(_buffer, _pos, _buffer, 0, unread);
            }

            _bufferStart += _pos;
            _pos = 0;
            _len = unread;
        }

        while (_len < count)
        {
            var n = _stream.Read(_buffer, _len, _buffer.Length - _len);
            if (n <= 0)
            {
                _eof = true;
                return false;
            }

            _len += n;
        }

        return true;
    }
}
