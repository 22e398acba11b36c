"""ECHONET Lite for site gateways: pure mapping from device properties to the v1 contract and back.

No I/O here (the gateway's network side is `services.gateway`), so units, signs and the DR policy are
unit-tested in milliseconds. Property definitions follow the ECHONET Lite Machine Readable Appendix
(Release M); see `../shared/specs/echonet/` in the project's shared folder.
"""
