// Runs an aedes broker for Herald's interop tests (internal/testenv):
//
//   node broker.mjs PREFIX HOST:PORT
//
// PREFIX is where `npm install --prefix PREFIX aedes@VERSION` put aedes
// (bin/aedes, made by `make interop-brokers`), so the broker's packages stay
// out of the repository. One plain TCP listener, aedes's defaults, and a line
// on stdout once it accepts connections, which the tests wait for instead of
// polling the port.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const [prefix, addr] = process.argv.slice(2)
if (!prefix || !addr) {
  console.error('usage: node broker.mjs PREFIX HOST:PORT')
  process.exit(2)
}
const colon = addr.lastIndexOf(':')
const host = addr.slice(0, colon)
const port = Number(addr.slice(colon + 1))

// aedes is an ES module found under PREFIX, not beside this file: resolve
// it as a script in PREFIX would, then import it by its path.
const require = createRequire(path.join(path.resolve(prefix), 'package.json'))
const aedesPath = require.resolve('aedes')
const { version } = JSON.parse(readFileSync(path.join(path.dirname(aedesPath), 'package.json'), 'utf8'))
const { Aedes } = await import(pathToFileURL(aedesPath).href)

const broker = await Aedes.createBroker()
// What clients do is logged so that a failing test's report shows the
// broker's side of the story.
broker.on('client', (client) => console.log('client connected', client.id))
broker.on('clientDisconnect', (client) => console.log('client disconnected', client.id))
broker.on('clientError', (client, err) => console.log('client error', client.id, err.message))
broker.on('connectionError', (_client, err) => console.log('connection error', err.message))
broker.on('keepaliveTimeout', (client) => console.log('keepalive timeout', client.id))

const server = net.createServer(broker.handle)
server.on('error', (err) => {
  // EADDRINUSE ends up here when the port was taken since the test picked
  // it; the test retries on another.
  console.error('listen', addr, err.message)
  process.exit(1)
})
server.listen(port, host, () => console.log(`aedes ${version} listening on ${addr}`))

const stop = () => broker.close(() => server.close(() => process.exit(0)))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
