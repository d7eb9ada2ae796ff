"""Reads one table of DICOM PS3.15 (DocBook XML) for the de-identification generators in this folder.

Standard library only.
"""
import hashlib
import os
import re
import sys
import xml.etree.ElementTree as ET

XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
DOCBOOK = "{http://docbook.org/ns/docbook}"


def text(node):
    return " ".join("".join(node.itertext()).split())


def paths(generated_name):
    """(source XML, output .cs) from argv, defaulting to ../shared/data/standard/part15.xml and the committed file."""
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    source = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, "..", "shared", "data", "standard", "part15.xml")
    output = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        repo, "src", "CovidFunctions.Dicom", "Deidentification", "Generated", generated_name)
    return source, output


def read_table(source, xml_id):
    """(sha256 of the XML, edition such as '2017c', list of rows as lists of cell texts) of table `xml_id`."""
    raw = open(source, "rb").read()
    digest = hashlib.sha256(raw).hexdigest()
    root = ET.fromstring(raw)
    title = text(root.find(DOCBOOK + "subtitle")) if root.find(DOCBOOK + "subtitle") is not None else ""
    edition_match = re.search(r"20\d\d[a-e]", title) or re.search(r"20\d\d[a-e]", raw[:4000].decode("utf-8", "replace"))
    edition = edition_match.group(0) if edition_match else "unknown"
    table = next(e for e in root.iter() if e.get(XML_ID) == xml_id)
    body = table.find(DOCBOOK + "tbody")
    rows = [[text(td) for td in tr.findall(DOCBOOK + "td")] for tr in body.findall(DOCBOOK + "tr")]
    return digest, edition, rows


def cs_string(s):
    """A C# string literal."""
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\""


def write_generated(output, lines, row_count, edition):
    """Writes the generated C# file (LF line ends, UTF-8) and says so."""
    with open(output, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines))
    print("wrote %d rows (edition %s) to %s" % (row_count, edition, output))
