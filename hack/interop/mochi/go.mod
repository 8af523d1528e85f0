// Module mochi is the mochi-mqtt broker Herald's interop tests run against.
// It is a build module only: Herald's own module never imports it.
module github.com/heraldiot/herald/hack/interop/mochi

go 1.26.0

require github.com/mochi-mqtt/server/v2 v2.7.9

require (
	github.com/gorilla/websocket v1.5.0 // indirect
	github.com/rs/xid v1.4.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
