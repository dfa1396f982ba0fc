"""The shared HL7 v2 layer: parsing, building, MLLP, ACKs, duplicate detection (to come)."""
