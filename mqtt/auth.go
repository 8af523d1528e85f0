package mqtt

import "context"

// Authenticator carries out MQTT 5.0 enhanced authentication (spec 4.12):
// a challenge/response exchange of AUTH packets under an authentication
// method such as SCRAM-SHA-256. One exchange happens at every connect and
// at every re-authentication (Client.Reauthenticate); the client calls
// Start, then Continue for each challenge, then Finish, never concurrently.
type Authenticator interface {
	// Method is the Authentication Method, e.g. "SCRAM-SHA-256".
	Method() string
	// Start begins an exchange and returns the Authentication Data for
	// CONNECT (or for the AUTH packet that starts a re-authentication).
	Start(ctx context.Context) ([]byte, error)
	// Continue answers a server challenge: the data of an AUTH packet
	// with reason Continue Authentication. It returns the data for the
	// client's AUTH reply; an error ends the exchange and the connection.
	Continue(ctx context.Context, challenge []byte) ([]byte, error)
	// Finish is called with the Authentication Data of the CONNACK or
	// AUTH packet that reports success. An error means the server failed
	// to prove itself (e.g. a wrong SCRAM server signature): the client
	// closes the connection.
	Finish(ctx context.Context, data []byte) error
}
