
â
refused2.proto
refused.v2"g
	WithGroup
a (Ra4
sample (
2.refused.v2.WithGroup.SampleRsample
Sample
x (Rx"!

Extendable
a (Ra*dÉ"‰
Legacy
	device_id (RdeviceId
at_us (:0RatUs
name (	:noneRname
plain (Rplain
packed (BRpacked:,
extra.refused.v2.Extendabled (Rextra