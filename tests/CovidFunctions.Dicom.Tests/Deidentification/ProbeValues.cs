using System.Buffers.Binary;
using CovidFunctions.Dicom.Deidentification;
using static CovidFunctions.Dicom.Tests.Deidentification.AdversarialProbeRound2Tests;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>
/// Values and look-ups the binary-value probes of rounds 4 and 5 share (<see cref="AdversarialProbeRound4Tests"/>,
/// <see cref="AdversarialProbeRound5Tests"/>): integers and floats as a little endian file holds them, a private block
/// planted in a dataset, an element found at any depth, and de-identification with Retain Safe Private on.
/// </summary>
internal static class ProbeValues
{
    /// <summary>The element at the top level or in any item below (the first found), else null.</summary>
    internal static DicomElement? Find(DicomDataset dataset, DicomTag tag)
    {
        if (dataset.TryGet(tag, out var element))
        {
            return element;
        }

        foreach (var sequence in dataset.OfType<DicomSequence>())
        {
            foreach (var item in sequence.Items)
            {
                if (Find(item, tag) is { } found)
                {
                    return found;
                }
            }
        }

        return null;
    }

    /// <summary>A private block of <paramref name="creator"/> at block 0x10 of <paramref name="group"/>, and one element in it.</summary>
    internal static DicomTag PlantPrivate(DicomDataset ds, ushort group, string creator, byte offset, string vr, byte[] value)
    {
        ds.SetString(new DicomTag(group, 0x0010), DicomVR.LO, creator);
        var tag = new DicomTag(group, (ushort)(0x1000 | offset));
        ds.AddOrUpdate(new DicomValueElement(tag, DicomVR.Parse(vr), value));
        return tag;
    }

    internal static byte[] DeidentifySafePrivate(DicomFile file, out DicomFile output)
    {
        var engine = new DeidentificationEngine(DeidentificationEngineTests.Key, new DeidentificationOptions { RetainSafePrivate = true });
        var outcome = engine.DeidentifyFile(file);
        Assert.True(outcome.Accepted, outcome.Rejection?.Message);
        var bytes = Written(file);
        output = DicomFile.Read(new MemoryStream(bytes, writable: false));
        return bytes;
    }

    internal static byte[] UL(params uint[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), values[i]);
        }

        return bytes;
    }

    internal static byte[] FD(params double[] values)
    {
        var bytes = new byte[values.Length * 8];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(i * 8), values[i]);
        }

        return bytes;
    }

    internal static byte[] FL(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }

        return bytes;
    }
}
