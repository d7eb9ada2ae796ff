using System.Collections.Frozen;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// Attributes with no row in Table E.1-1 that are kept because the image and the pipeline need them and they do not
/// identify a patient: the file meta structure, SOP common class, image pixel, image plane, CT image and multi-frame
/// functional group structure, rescale and windowing, series/study structure numbers. Everything else without a rule is
/// removed (house style rule 7). A Table E.1-1 row always wins over this list. Documented in docs/compliance/deid-conformance.md.
/// </summary>
public static class DeidKeepList
{
    private static readonly FrozenSet<uint> Tags = new uint[]
    {
        // File meta information (group 0002): structure only. (0002,0003) is U in Table E.1-1; the implementation
        // identifiers (0002,0012/0013) are rewritten to ours and the AE titles (0002,0016-0018) are removed by the engine.
        0x00020001, // File Meta Information Version
        0x00020002, // Media Storage SOP Class UID
        0x00020010, // Transfer Syntax UID

        // SOP common and general image/series/study structure.
        0x00080005, // Specific Character Set
        0x00080008, // Image Type
        0x00080016, // SOP Class UID
        0x00080060, // Modality
        0x00080070, // Manufacturer (vendor name, needed for kernel/calibration handling; not the device identity)
        0x00089205, // Pixel Presentation
        0x00089206, // Volumetric Properties
        0x00089207, // Volume Based Calculation Technique
        0x00089007, // Frame Type
        0x00081150, // Referenced SOP Class UID (a class; a non-standard class UID is remapped like any UID)
        // Code Value / Coding Scheme / Code Meaning are deliberately NOT kept: code items inside kept or dummied sequences
        // (Institution Code Sequence, Person Identification Code Sequence, ...) can name people and places.

        // CT acquisition and reconstruction parameters (CT Image module, CT functional groups).
        0x00180015, // Body Part Examined
        0x00180022, // Scan Options
        0x00180050, // Slice Thickness
        0x00180060, // KVP
        0x00180088, // Spacing Between Slices
        0x00180090, // Data Collection Diameter
        0x00181100, // Reconstruction Diameter
        0x00181110, // Distance Source to Detector
        0x00181111, // Distance Source to Patient
        0x00181120, // Gantry/Detector Tilt
        0x00181130, // Table Height
        0x00181140, // Rotation Direction
        0x00181150, // Exposure Time
        0x00181151, // X-Ray Tube Current
        0x00181152, // Exposure
        0x00181153, // Exposure in uAs
        0x00181160, // Filter Type
        0x00181170, // Generator Power
        0x00181190, // Focal Spot(s)
        0x00181210, // Convolution Kernel
        0x00185100, // Patient Position
        0x00189004, // Content Qualification
        0x00189301, // CT Acquisition Type Sequence
        0x00189302, // Acquisition Type
        0x00189303, // Tube Angle
        0x00189304, // CT Acquisition Details Sequence
        0x00189305, // Revolution Time
        0x00189306, // Single Collimation Width
        0x00189307, // Total Collimation Width
        0x00189308, // CT Table Dynamics Sequence
        0x00189309, // Table Speed
        0x00189310, // Table Feed per Rotation
        0x00189311, // Spiral Pitch Factor
        0x00189312, // CT Geometry Sequence
        0x00189313, // Data Collection Center (Patient)
        0x00189314, // CT Reconstruction Sequence
        0x00189315, // Reconstruction Algorithm
        0x00189316, // Convolution Kernel Group
        0x00189317, // Reconstruction Field of View
        0x00189318, // Reconstruction Target Center (Patient)
        0x00189319, // Reconstruction Angle
        0x00189320, // Image Filter
        0x00189321, // CT Exposure Sequence
        0x00189322, // Reconstruction Pixel Spacing
        0x00189323, // Exposure Modulation Type
        0x00189324, // Estimated Dose Saving
        0x00189325, // CT X-Ray Details Sequence
        0x00189326, // CT Position Sequence
        0x00189327, // Table Position
        0x00189328, // Exposure Time in ms
        0x00189329, // CT Image Frame Type Sequence
        0x00189330, // X-Ray Tube Current in mA
        0x00189332, // Exposure in mAs
        0x00189345, // CTDIvol
        0x00189351, // Calcium Scoring Mass Factor Patient
        0x00189352, // Calcium Scoring Mass Factor Device

        // Relationship, image plane and multi-frame dimensions.
        0x00200011, // Series Number
        0x00200012, // Acquisition Number
        0x00200013, // Instance Number
        0x00200020, // Patient Orientation
        0x00200032, // Image Position (Patient)
        0x00200037, // Image Orientation (Patient)
        0x00200100, // Temporal Position Identifier
        0x00200105, // Number of Temporal Positions
        0x00201041, // Slice Location
        0x00209056, // Stack ID
        0x00209057, // In-Stack Position Number
        0x00209111, // Frame Content Sequence
        0x00209113, // Plane Position Sequence
        0x00209116, // Plane Orientation Sequence
        0x00209128, // Temporal Position Index
        0x00209157, // Dimension Index Values
        0x00209165, // Dimension Index Pointer
        0x00209167, // Functional Group Pointer
        0x00209221, // Dimension Organization Sequence
        0x00209222, // Dimension Index Sequence
        0x00209228, // Concatenation Frame Offset Number
        0x00209162, // In-concatenation Number
        0x00209163, // In-concatenation Total Number
        0x00209241, // Nominal Percentage of Cardiac Phase

        // Image pixel, rescale, windowing, LUTs.
        0x00280002, // Samples per Pixel
        0x00280004, // Photometric Interpretation
        0x00280006, // Planar Configuration
        0x00280008, // Number of Frames
        0x00280009, // Frame Increment Pointer
        0x00280010, // Rows
        0x00280011, // Columns
        0x00280030, // Pixel Spacing
        0x00280034, // Pixel Aspect Ratio
        0x00280100, // Bits Allocated
        0x00280101, // Bits Stored
        0x00280102, // High Bit
        0x00280103, // Pixel Representation
        0x00280106, // Smallest Image Pixel Value
        0x00280107, // Largest Image Pixel Value
        0x00280120, // Pixel Padding Value
        0x00280121, // Pixel Padding Range Limit
        0x00280301, // Burned In Annotation
        0x00280302, // Recognizable Visual Features
        0x00280303, // Longitudinal Temporal Information Modified (written by the engine)
        0x00281040, // Pixel Intensity Relationship
        0x00281041, // Pixel Intensity Relationship Sign
        0x00281050, // Window Center
        0x00281051, // Window Width
        0x00281052, // Rescale Intercept
        0x00281053, // Rescale Slope
        0x00281054, // Rescale Type
        // Palette color lookup tables (0028,1101-1103 / 1201-1203) are NOT kept: CT is monochrome, and a table of any
        // bytes is a place to hide text.
        0x00282110, // Lossy Image Compression
        0x00282112, // Lossy Image Compression Ratio
        0x00282114, // Lossy Image Compression Method
        // Modality / VOI LUT Sequences (0028,3000/3010) and their LUT Descriptor, Type and Data are NOT kept: LUT Data is a
        // table of any words (a place to hide text, like the palettes), the pipeline rescales and windows from the
        // attributes above, and neither module belongs to the CT Image IOD's rescale path.
        0x00289110, // Pixel Measures Sequence
        0x00289132, // Frame VOI LUT Sequence
        0x00289145, // Pixel Value Transformation Sequence

        // De-identification record (written by the engine).
        0x00120062, // Patient Identity Removed
        0x00120063, // De-identification Method
        0x00120064, // De-identification Method Code Sequence

        // Multi-frame functional groups and pixel data.
        0x52009229, // Shared Functional Groups Sequence
        0x52009230, // Per-frame Functional Groups Sequence
        // Extended Offset Table (Lengths) (7FE0,0001/0002) are NOT kept: they index encapsulated frames, and the output's
        // Pixel Data is always native (PixelDataRewrite); beside native pixels they are 8-byte words of anything. Float and
        // Double Float Pixel Data (7FE0,0008/0009) are NOT kept: Parametric Map only, never in a CT, any bytes.
        0x7FE00010, // Pixel Data
    }.ToFrozenSet();

    /// <summary>True when the tag is on the keep-list.</summary>
    public static bool Contains(uint tag) => Tags.Contains(tag);

    /// <summary>Every tag on the keep-list (for documentation and tests).</summary>
    public static IReadOnlyCollection<uint> All => Tags;
}
