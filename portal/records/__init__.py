"""The client's own record: the export, requests for a copy or an amendment, disclosures."""
