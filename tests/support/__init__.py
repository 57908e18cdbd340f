"""What the suites share, each thing once:

* `aws`: template.yaml's tables, handler loading, sample events, a Lambda context, an
  atomic DynamoDB client, a recording Step Functions client.
* `api_events`: the API handlers' sample events shaped per tenant / key, and a handler
  called with one.
* `clock`: a clock that moves only when told.
* `loopback`: an HTTP server on 127.0.0.1 that records requests and answers as told.
* `fake_providers`: the four LLM providers' APIs on loopback (limits, outages, scripts).
* `providers`: the data the provider-client tests share (tools, published schemas).
* `e2e`: the e2e stack's settings and the task poller.
"""
