"""Traffic: when requests arrive and how long they are. Free of SimPy on purpose.

The simulator and the load tests both call `build_request_stream(scenario)` and so see the
very same arrival stream for the same seed.
"""

from llmplan.traffic.arrivals import TrafficSpec
from llmplan.traffic.lengths import LengthSpec
from llmplan.traffic.stream import RequestStream, build_request_stream
from llmplan.traffic.volume import long_run_requests

__all__ = ["LengthSpec", "RequestStream", "TrafficSpec", "build_request_stream",
           "long_run_requests"]
