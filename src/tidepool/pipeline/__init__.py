"""The pipeline as one product: `tidepool up` (the supervisor) and `tidepool simulate` (the sensor producer)."""
