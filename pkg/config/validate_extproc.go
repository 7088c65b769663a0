package config

// extProcFraming is the room a body leaves in its gRPC message for the
// rest of the ProcessingRequest (headers aside, the dynamic metadata).
const extProcFraming = 64 << 10

// validateExtProc: Envoy sends a BUFFERED body to the external processor
// as one gRPC message, which the gateway's gRPC server refuses beyond
// grpc.max_recv_msg_bytes (Envoy then answers 500): the bound of the body
// must fit in the bound of the message.
func (c *Config) validateExtProc(ch *checker) {
	if c.ExtProc.Enabled && c.ExtProc.MaxBodyBytes > c.GRPC.MaxRecvMsgBytes-extProcFraming {
		ch.add("ext_proc.max_body_bytes", "must be at most grpc.max_recv_msg_bytes (%d) less 64 KiB: Envoy sends a buffered body as one gRPC message", c.GRPC.MaxRecvMsgBytes)
	}
}
