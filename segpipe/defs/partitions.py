import dagster as dg

annotation_batches = dg.DynamicPartitionsDefinition(name="annotation_batches")
