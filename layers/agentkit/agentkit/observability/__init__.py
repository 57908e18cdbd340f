"""What a task did, for its operators: X-Ray traces (`tracing`) and CloudWatch
embedded-metric-format metrics (`metrics`), and a model call observed for both
(`model_calls`). Nothing here may fail the work it observes."""
