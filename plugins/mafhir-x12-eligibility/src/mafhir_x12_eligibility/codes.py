"""X12 005010X279A1 code tables the 270/271 mapping needs (mapping-reference §5.3).

Displays follow mapping-reference §5.3 (cross-checked there against linuxforhealth-x12 and
pyx12's 4010 maps); the licensed TR3 is the authority. Only codes with a meaning used by
mafhir are listed; anything else is kept as sent and named "not mapped" with its reason.
"""

from __future__ import annotations

__all__ = ["AAA_FOLLOW_UP", "AAA_REASONS", "AAA_TRANSIENT", "COVERAGE_LEVEL", "EB_ACTIVE",
           "EB_INACTIVE", "EB_INFO", "IK3_ERRORS", "IK4_ERRORS", "IK5_CODES",
           "INSURANCE_TYPE", "RELATIONSHIP", "SERVICE_TYPES", "TA1_NOTES", "TIME_QUALIFIER"]

#: AAA03 reject reason (element 901) → meaning.
AAA_REASONS = {
    "04": "Authorized Quantity Exceeded",
    "15": "Required application data missing",
    "41": "Authorization/Access Restrictions",
    "42": "Unable to Respond at Current Time",
    "43": "Invalid/Missing Provider Identification",
    "44": "Invalid/Missing Provider Name",
    "45": "Invalid/Missing Provider Specialty",
    "47": "Invalid/Missing Provider State",
    "48": "Invalid/Missing Referring Provider Identification Number",
    "50": "Provider Ineligible for Inquiries",
    "51": "Provider Not on File",
    "52": "Service Dates Not Within Provider Plan Enrollment",
    "56": "Inappropriate Date",
    "57": "Invalid/Missing Date(s) of Service",
    "58": "Invalid/Missing Date-of-Birth",
    "60": "Date of Birth Follows Date(s) of Service",
    "61": "Date of Death Precedes Date(s) of Service",
    "62": "Date of Service Not Within Allowable Inquiry Period",
    "63": "Date of Service in Future",
    "64": "Invalid/Missing Patient ID",
    "65": "Invalid/Missing Patient Name",
    "66": "Invalid/Missing Patient Gender Code",
    "67": "Patient Not Found",
    "68": "Duplicate Patient ID Number",
    "71": "Patient Birth Date Does Not Match That for the Patient on the Database",
    "72": "Invalid/Missing Subscriber/Insured ID",
    "73": "Invalid/Missing Subscriber/Insured Name",
    "74": "Invalid/Missing Subscriber/Insured Gender Code",
    "75": "Subscriber/Insured Not Found",
    "76": "Duplicate Subscriber/Insured ID Number",
    "78": "Subscriber/Insured Not in Group/Plan Identified",
    "79": "Invalid Participant Identification",
    "80": "No Response received - Transaction Terminated",
    "97": "Invalid or Missing Provider Address",
    "AA": "Authorization Number Not Found",
    "AE": "Requires Primary Care Physician Authorization",
    "AF": "Invalid/Missing Diagnosis Code(s)",
    "AG": "Invalid/Missing Procedure Code(s)",
    "AO": "Additional Patient Condition Information Required",
    "CI": "Certification Information Does Not Match Patient",
    "E8": "Requires Medical Review",
    "IA": "Invalid Authorization Number Format",
    "MA": "Missing Authorization Number",
    "T4": "Payer Name or Identifier Missing",
}
#: Reject reasons that say "ask again later": the outbox retries them.
AAA_TRANSIENT = frozenset({"42", "80"})
#: AAA04 follow-up action.
AAA_FOLLOW_UP = {
    "C": "Please Correct and Resubmit", "N": "Resubmission Not Allowed",
    "P": "Please Resubmit Original Transaction", "R": "Resubmission Allowed",
    "S": "Do Not Resubmit; Inquiry Initiated to a Third Party",
    "W": "Please Wait 30 Days and Resubmit", "X": "Please Wait 10 Days and Resubmit",
    "Y": "Do Not Resubmit; We Will Hand Over Your Request",
}

#: EB01 codes that say the coverage is in force, and those that say it is not.
EB_ACTIVE = {
    "1": "Active Coverage", "2": "Active - Full Risk Capitation",
    "3": "Active - Services Capitated", "4": "Active - Services Capitated to Primary Care "
    "Physician", "5": "Active - Pending Investigation",
}
EB_INACTIVE = {
    "6": "Inactive", "7": "Inactive - Pending Eligibility Update",
    "8": "Inactive - Pending Investigation",
}
#: EB01 benefit information codes (beyond active/inactive).
EB_INFO = {
    "A": "Co-Insurance", "B": "Co-Payment", "C": "Deductible",
    "CB": "Coverage Basis", "D": "Benefit Description", "E": "Exclusions",
    "F": "Limitations", "G": "Out of Pocket (Stop Loss)", "H": "Unlimited",
    "I": "Non-Covered", "J": "Cost Containment", "K": "Reserve",
    "L": "Primary Care Provider", "M": "Pre-existing Condition",
    "MC": "Managed Care Coordinator", "N": "Services Restricted to Following Provider",
    "O": "Not Deemed a Medical Necessity", "P": "Benefit Disclaimer",
    "Q": "Second Surgical Opinion Required", "R": "Other or Additional Payor",
    "S": "Prior Year(s) History", "T": "Card(s) Reported Lost/Stolen",
    "U": "Contact Following Entity for Eligibility or Benefit Information",
    "V": "Cannot Process", "W": "Other Source of Data", "X": "Health Care Facility",
    "Y": "Spend Down",
}
#: EB06 time period qualifier (element 615) → (meaning, FHIR benefit-term or None).
TIME_QUALIFIER = {
    "6": ("Hour", None), "7": ("Day", "day"), "13": ("24 Hours", "day"),
    "21": ("Years", None), "22": ("Service Year", "annual"),
    "23": ("Calendar Year", "annual"), "24": ("Year to Date", "annual"),
    "25": ("Contract", None), "26": ("Episode", None), "27": ("Visit", None),
    "28": ("Outlier", None), "29": ("Remaining", None), "30": ("Exceeded", None),
    "31": ("Not Exceeded", None), "32": ("Lifetime", "lifetime"),
    "33": ("Lifetime Remaining", "lifetime"), "34": ("Month", None), "35": ("Week", None),
    "36": ("Admission", None),
}
#: EB02 coverage level → FHIR benefit-unit (individual/family) where one fits.
COVERAGE_LEVEL = {
    "IND": ("Individual", "individual"), "FAM": ("Family", "family"),
    "EMP": ("Employee Only", "individual"), "ESP": ("Employee and Spouse", "family"),
    "CHD": ("Children Only", "family"), "DEP": ("Dependents Only", "family"),
    "ECH": ("Employee and Children", "family"), "SPC": ("Spouse and Children", "family"),
    "SPO": ("Spouse Only", "individual"), "E1D": ("Employee and One Dependent", "family"),
    "E2D": ("Employee and Two Dependents", "family"),
    "E3D": ("Employee and Three Dependents", "family"),
    "E5D": ("Employee and One or More Dependents", "family"),
}
#: EB03 / EQ01 service type (element 1365): the common outpatient ones.
SERVICE_TYPES = {
    "1": "Medical Care", "2": "Surgical", "4": "Diagnostic X-Ray", "5": "Diagnostic Lab",
    "30": "Health Benefit Plan Coverage", "33": "Chiropractic", "35": "Dental Care",
    "47": "Hospital", "48": "Hospital - Inpatient", "50": "Hospital - Outpatient",
    "60": "General Benefits", "80": "Immunizations", "81": "Routine Physical",
    "86": "Emergency Services", "88": "Pharmacy", "98": "Professional (Physician) Visit - "
    "Office", "A0": "Professional (Physician) Visit - Outpatient", "AL": "Vision (Optometry)",
    "BZ": "Physician Visit - Office: Sick", "MH": "Mental Health", "UC": "Urgent Care",
    "F1": "Medical Coverage",
}
#: EB04 insurance type (element 1336), the ones §5.3 names.
INSURANCE_TYPE = {
    "HM": "Health Maintenance Organization (HMO)", "PR": "Preferred Provider Organization "
    "(PPO)", "EP": "Exclusive Provider Organization (EPO)", "C1": "Commercial",
    "MA": "Medicare Part A", "MB": "Medicare Part B", "MC": "Medicaid",
    "MP": "Medicare Primary", "PS": "Point of Service (POS)", "HN": "HMO - Medicare Risk",
}
#: INS02 individual relationship → FHIR subscriber-relationship (project mapping §5.3).
RELATIONSHIP = {"18": "self", "01": "spouse", "19": "child", "34": "other", "G8": "other"}

#: TA1 interchange note codes (TA105) → meaning.
TA1_NOTES = {
    "000": "No error", "001": "The Interchange Control Number in the Header and Trailer "
    "Do Not Match", "002": "This Standard as Noted in the Control Standards Identifier is "
    "Not Supported", "003": "This Version of the Controls is Not Supported",
    "004": "The Segment Terminator is Invalid", "005": "Invalid Interchange ID Qualifier "
    "for Sender", "006": "Invalid Interchange Sender ID", "007": "Invalid Interchange ID "
    "Qualifier for Receiver", "008": "Invalid Interchange Receiver ID",
    "014": "Invalid Interchange Date Value", "015": "Invalid Interchange Time Value",
    "016": "Invalid Interchange Standards Identifier Value", "017": "Invalid Interchange "
    "Version ID Value", "018": "Invalid Interchange Control Number Value",
    "019": "Invalid Acknowledgment Requested Value", "020": "Invalid Test Indicator Value",
    "021": "Invalid Number of Included Groups Value", "022": "Invalid Control Structure",
    "023": "Improper (Premature) End-of-File (Transmission)", "024": "Invalid Interchange "
    "Content (e.g., Invalid GS Segment)", "025": "Duplicate Interchange Control Number",
    "026": "Invalid Data Element Separator", "027": "Invalid Component Element Separator",
}
#: 999 IK304 segment syntax error codes.
IK3_ERRORS = {
    "1": "Unrecognized segment ID", "2": "Unexpected segment",
    "3": "Required Segment Missing", "4": "Loop Occurs Over Maximum Times",
    "5": "Segment Exceeds Maximum Use", "6": "Segment Not in Defined Transaction Set",
    "7": "Segment Not in Proper Sequence", "8": "Segment Has Data Element Errors",
    "I4": "Implementation \"Not Used\" Segment Present",
    "I6": "Implementation Dependent Segment Missing",
    "I7": "Implementation Loop Occurs Under Minimum Times",
    "I8": "Implementation Segment Below Minimum Use",
    "I9": "Implementation Dependent \"Not Used\" Segment Present",
}
#: 999 IK403 element error codes.
IK4_ERRORS = {
    "1": "Required Data Element Missing", "2": "Conditional Required Data Element Missing",
    "3": "Too Many Data Elements", "4": "Data Element Too Short",
    "5": "Data Element Too Long", "6": "Invalid Character In Data Element",
    "7": "Invalid Code Value", "8": "Invalid Date", "9": "Invalid Time",
    "10": "Exclusion Condition Violated", "12": "Too Many Repetitions",
    "13": "Too Many Components", "I10": "Implementation \"Not Used\" Data Element Present",
    "I11": "Implementation Too Few Repetitions", "I12": "Implementation Pattern Match "
    "Failure", "I13": "Implementation Dependent \"Not Used\" Data Element Present",
    "I6": "Code Value Not Used in Implementation",
    "I9": "Implementation Dependent Data Element Missing",
}
#: 999 IK501 / AK901 acknowledgment codes.
IK5_CODES = {"A": "Accepted", "E": "Accepted But Errors Were Noted", "M": "Rejected, "
             "Message Authentication Code (MAC) Failed", "P": "Partially Accepted",
             "R": "Rejected", "W": "Rejected, Assurance Failed Validity Tests",
             "X": "Rejected, Content After Decryption Could Not Be Analyzed"}
