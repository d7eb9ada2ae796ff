using CovidFunctions.Dicom.Deidentification;

namespace CovidFunctions.Pipeline.Tests;

/// <summary>Study-id keys for tests that plan uploads or predict study ids (ids are keyed, StudyIds.ForUpload).</summary>
internal static class TestStudyIdKeys
{
    /// <summary>One fixed key (from a fixed de-identification key), so expected ids are the same in every run.</summary>
    public static StudyIdKey Fixed { get; } = StudyIdKey.From(DeidKey.FromBytes(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray()));
}
