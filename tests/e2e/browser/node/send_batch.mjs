// Sends the calls given as JSON on stdin through the unmodified @segment/analytics-node, as a
// Node service would, and prints what went over the wire: {"responses": [{status, events}],
// "errors": [...]}. The test (test_node_sdk.py) compares the events topic with the calls.
import { Analytics } from '@segment/analytics-node'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const { host, writeKey, calls } = JSON.parse(Buffer.concat(chunks).toString('utf8'))

// flushAt = every call, so the SDK sends them as one batch; no retries, so a failed request
// shows as an error here instead of a second copy on the topic
const analytics = new Analytics({ writeKey, host, flushAt: calls.length, maxRetries: 0 })
const responses = []
const errors = []
analytics.on('http_response', ({ status, body }) => {
  responses.push({ status, events: JSON.parse(body).batch.length })
})
analytics.on('error', ({ code, reason }) => errors.push(`${code}: ${reason}`))

for (const { type, params } of calls) analytics[type](params)
await analytics.closeAndFlush({ timeout: 30000 })
console.log(JSON.stringify({ responses, errors }))
