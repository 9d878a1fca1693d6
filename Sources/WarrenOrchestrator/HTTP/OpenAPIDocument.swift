/// The OpenAPI document of the HTTP API, served at `/openapi.json`. A test checks that every
/// operation here is served and that the server serves nothing it leaves out.
enum OpenAPIDocument {
    static let json = #"""
{
  "openapi": "3.0.3",
  "info": {
    "title": "Warren",
    "version": "0.1.0",
    "description": "Durable promises (the Durable Promise Specification's routes) and Warren's workflows, tasks and health. Promise data is base64 of the JSON text Warren stores. With tokens configured, every route but /health, /ready, /openapi.json and /ui needs 'Authorization: Bearer <token>' with a scope: admin (everything), workflows (start and read workflows, create promises), approve (read and settle the promises workflows wait on); 401 without a valid token, 403 without the scope. Writes must be application/json (415 otherwise). Promises of a workflow's machinery (its result, steps, timers) are settled by its own run only: 403 internalPromise."
  },
  "security": [{"bearer": []}, {}],
  "paths": {
    "/promises": {
      "post": {
        "operationId": "createPromise",
        "summary": "Create a promise",
        "parameters": [
          {"$ref": "#/components/parameters/RequestId"},
          {"$ref": "#/components/parameters/IdempotencyKey"},
          {"$ref": "#/components/parameters/Strict"}
        ],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreatePromise"}}}},
        "responses": {
          "201": {"description": "Created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Promise"}}}},
          "200": {"description": "An idempotent repeat: the existing promise", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Promise"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "409": {"$ref": "#/components/responses/Error"},
          "413": {"$ref": "#/components/responses/Error"}
        }
      },
      "get": {
        "operationId": "searchPromises",
        "summary": "Search promises by id pattern, state and tags, a page at a time",
        "parameters": [
          {"name": "id", "in": "query", "schema": {"type": "string"}, "description": "An id pattern; * matches any run of characters"},
          {"name": "state", "in": "query", "schema": {"type": "string", "enum": ["pending", "resolved", "rejected", "rejected_canceled", "rejected_timedout"]}},
          {"name": "tags", "in": "query", "style": "deepObject", "explode": true, "schema": {"type": "object", "additionalProperties": {"type": "string"}}},
          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
          {"name": "cursor", "in": "query", "schema": {"type": "string"}}
        ],
        "responses": {
          "200": {"description": "A page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PromisePage"}}}},
          "400": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/promises/{id}": {
      "get": {
        "operationId": "getPromise",
        "summary": "Get a promise",
        "parameters": [{"$ref": "#/components/parameters/Id"}],
        "responses": {
          "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Promise"}}}},
          "404": {"$ref": "#/components/responses/Error"}
        }
      },
      "patch": {
        "operationId": "completePromise",
        "summary": "Resolve, reject or cancel a promise",
        "parameters": [
          {"$ref": "#/components/parameters/Id"},
          {"$ref": "#/components/parameters/RequestId"},
          {"$ref": "#/components/parameters/IdempotencyKey"},
          {"$ref": "#/components/parameters/Strict"}
        ],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CompletePromise"}}}},
        "responses": {
          "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Promise"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "403": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/workflows": {
      "post": {
        "operationId": "startWorkflow",
        "summary": "Start a workflow (the same id again finds it)",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StartWorkflow"}}}},
        "responses": {
          "201": {"description": "Started", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Workflow"}}}},
          "200": {"description": "It exists with the same function and arguments", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Workflow"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "409": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/workflows/{id}": {
      "get": {
        "operationId": "getWorkflow",
        "summary": "A workflow's state, result or error, and task",
        "parameters": [{"$ref": "#/components/parameters/Id"}],
        "responses": {
          "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Workflow"}}}},
          "404": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/workflows/{id}/cancel": {
      "post": {
        "operationId": "cancelWorkflow",
        "summary": "Cancel a workflow (scope workflows): its root becomes REJECTED_CANCELED, pending children below it are canceled (detached ones are not), and its code gets one compensating run within --cancel-grace; the same cancel again changes nothing",
        "parameters": [{"$ref": "#/components/parameters/Id"}],
        "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}},
        "responses": {
          "200": {"description": "The workflow after the decision", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Workflow"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "403": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/workflows/{id}/retry": {
      "post": {
        "operationId": "retryWorkflow",
        "summary": "Offer a blocked (or backing-off) workflow's tasks to workers again now (admin), after a fixed deploy; 400 invalidTaskState when nothing is blocked",
        "parameters": [{"$ref": "#/components/parameters/Id"}],
        "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}},
        "responses": {
          "200": {"description": "The workflow after the decision", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Workflow"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "403": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/workflows/{id}/fail": {
      "post": {
        "operationId": "failWorkflow",
        "summary": "Reject a workflow for good (admin): its root becomes REJECTED with the reason, pending children are canceled, no compensation runs",
        "parameters": [{"$ref": "#/components/parameters/Id"}],
        "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}},
        "responses": {
          "200": {"description": "The workflow after the decision", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Workflow"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "403": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/tasks": {
      "get": {
        "operationId": "listTasks",
        "summary": "Tasks, a page at a time",
        "parameters": [
          {"name": "state", "in": "query", "schema": {"type": "string", "enum": ["pending", "acquired", "suspended", "blocked", "completed"]}},
          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
          {"name": "cursor", "in": "query", "schema": {"type": "string"}}
        ],
        "responses": {
          "200": {"description": "A page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskPage"}}}},
          "400": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/schedules": {
      "post": {
        "operationId": "createSchedule",
        "summary": "Create a schedule that starts a workflow at each tick of a cron expression; the same definition again is 200, another under its id 409",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScheduleCreate"}}}},
        "responses": {
          "201": {"description": "Created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Schedule"}}}},
          "200": {"description": "The same schedule existed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Schedule"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "409": {"$ref": "#/components/responses/Error"}
        }
      },
      "get": {
        "operationId": "listSchedules",
        "summary": "Schedules, a page at a time, in id order",
        "parameters": [
          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
          {"name": "cursor", "in": "query", "schema": {"type": "string"}}
        ],
        "responses": {
          "200": {"description": "A page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SchedulePage"}}}},
          "400": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/schedules/{id}": {
      "get": {
        "operationId": "getSchedule",
        "summary": "A schedule: its definition, next tick and last workflow",
        "parameters": [{"$ref": "#/components/parameters/Id"}],
        "responses": {
          "200": {"description": "The schedule", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Schedule"}}}},
          "404": {"$ref": "#/components/responses/Error"}
        }
      },
      "delete": {
        "operationId": "deleteSchedule",
        "summary": "Delete a schedule; the workflows it started go on",
        "parameters": [{"$ref": "#/components/parameters/Id"}],
        "responses": {
          "200": {"description": "The schedule as it was", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Schedule"}}}},
          "404": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/schedules/{id}/pause": {
      "post": {
        "operationId": "pauseSchedule",
        "summary": "Stop a schedule ticking; ticks while it is paused start nothing",
        "parameters": [{"$ref": "#/components/parameters/Id"}],
        "responses": {
          "200": {"description": "The schedule after it", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Schedule"}}}},
          "404": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/schedules/{id}/resume": {
      "post": {
        "operationId": "resumeSchedule",
        "summary": "Let a paused schedule tick again, from its next tick after now",
        "parameters": [{"$ref": "#/components/parameters/Id"}],
        "responses": {
          "200": {"description": "The schedule after it", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Schedule"}}}},
          "404": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/dead": {
      "get": {
        "operationId": "listDeadLetters",
        "summary": "What the dead-letter queue holds, with each message's reason, routing key, age and a preview; left in the queue (admin)",
        "parameters": [
          {"name": "select", "in": "query", "schema": {"type": "string", "default": "all"}, "description": "all, id:<hex>, key:<routing key glob>, reason:<text>"},
          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000}}
        ],
        "responses": {
          "200": {"description": "The messages looked at", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeadLetters"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/dead/replay": {
      "post": {
        "operationId": "replayDeadLetters",
        "summary": "Send the selected dead letters again to the exchange and routing key they were published with, after a fix (admin)",
        "parameters": [
          {"name": "select", "in": "query", "required": true, "schema": {"type": "string"}},
          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000}}
        ],
        "responses": {
          "200": {"description": "What was replayed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeadLetters"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/dead/purge": {
      "post": {
        "operationId": "purgeDeadLetters",
        "summary": "Drop the selected dead letters (admin)",
        "parameters": [
          {"name": "select", "in": "query", "required": true, "schema": {"type": "string"}},
          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000}}
        ],
        "responses": {
          "200": {"description": "What was dropped", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeadLetters"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/outbox": {
      "get": {
        "operationId": "listSetAside",
        "summary": "Outgoing messages the broker refused, set aside with the reason",
        "responses": {
          "200": {"description": "The messages set aside", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OutboxPage"}}}}
        }
      }
    },
    "/outbox/retry": {
      "post": {
        "operationId": "retrySetAside",
        "summary": "Sends messages set aside again (all, or those named by seq), after the cause is fixed",
        "parameters": [{"name": "seq", "in": "query", "schema": {"type": "integer", "format": "int64"}}],
        "responses": {
          "200": {"description": "How many were put back", "content": {"application/json": {"schema": {"type": "object", "properties": {"retried": {"type": "integer"}}}}}},
          "400": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/health": {
      "get": {"operationId": "health", "summary": "The process is up", "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}}}}
    },
    "/ready": {
      "get": {
        "operationId": "ready",
        "summary": "The orchestrator consumes its queue",
        "responses": {
          "200": {"description": "Ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}},
          "503": {"description": "Not ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}}
        }
      }
    },
    "/openapi.json": {
      "get": {"operationId": "openapi", "summary": "This document", "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}}
    },
    "/ui": {
      "get": {"operationId": "approvalPage", "summary": "The approval page", "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}
    },
    "/approve/{id}": {
      "get": {
        "operationId": "approvalLinkPage",
        "parameters": [{"$ref": "#/components/parameters/Id"}, {"$ref": "#/components/parameters/LinkOutcomes"}, {"$ref": "#/components/parameters/LinkExpires"},
                       {"$ref": "#/components/parameters/LinkKeyId"}, {"$ref": "#/components/parameters/LinkSignature"}],
        "summary": "A signed approval link's confirmation page (settles nothing)",
        "responses": {
          "200": {"description": "The confirmation page", "content": {"text/html": {"schema": {"type": "string"}}}},
          "400": {"description": "Malformed link", "content": {"text/html": {"schema": {"type": "string"}}}},
          "403": {"description": "Altered, forged, or signed with an unknown key", "content": {"text/html": {"schema": {"type": "string"}}}},
          "404": {"description": "No such promise, or no link keys configured", "content": {"text/html": {"schema": {"type": "string"}}}},
          "409": {"description": "Already decided", "content": {"text/html": {"schema": {"type": "string"}}}},
          "410": {"description": "Expired", "content": {"text/html": {"schema": {"type": "string"}}}}
        }
      },
      "post": {
        "operationId": "settleByLink",
        "parameters": [{"$ref": "#/components/parameters/Id"}, {"$ref": "#/components/parameters/LinkOutcomes"}, {"$ref": "#/components/parameters/LinkExpires"},
                       {"$ref": "#/components/parameters/LinkKeyId"}, {"$ref": "#/components/parameters/LinkSignature"}],
        "summary": "Settle the link's promise with one of its outcomes (resolves with the outcome's name)",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
          "type": "object", "required": ["outcome"],
          "properties": {"outcome": {"type": "string"}, "comment": {"type": "string", "maxLength": 2000}}
        }}}},
        "responses": {
          "200": {"description": "Settled", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Promise"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "403": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"},
          "409": {"$ref": "#/components/responses/Error"},
          "410": {"$ref": "#/components/responses/Error"},
          "413": {"$ref": "#/components/responses/Error"},
          "415": {"$ref": "#/components/responses/Error"}
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "bearer": {"type": "http", "scheme": "bearer", "description": "A token from WARREN_TOKENS or --tokens-file"}
    },
    "parameters": {
      "Id": {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
      "RequestId": {"name": "request-id", "in": "header", "schema": {"type": "string"}},
      "IdempotencyKey": {"name": "idempotency-key", "in": "header", "schema": {"type": "string"}},
      "Strict": {"name": "strict", "in": "header", "schema": {"type": "boolean"}},
      "LinkOutcomes": {"name": "outcomes", "in": "query", "required": true, "schema": {"type": "string"}, "description": "The outcomes the link offers, comma-separated"},
      "LinkExpires": {"name": "expires", "in": "query", "required": true, "schema": {"type": "integer", "format": "int64"}, "description": "When the link stops working, epoch milliseconds"},
      "LinkKeyId": {"name": "kid", "in": "query", "required": true, "schema": {"type": "string"}, "description": "The id of the key that signed the link"},
      "LinkSignature": {"name": "sig", "in": "query", "required": true, "schema": {"type": "string"}, "description": "HMAC-SHA256 over the key id, promise id, outcomes and expiry, base64url"}
    },
    "responses": {
      "Error": {"description": "Refused", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    },
    "schemas": {
      "DeadLetters": {
        "type": "object",
        "properties": {
          "total": {"type": "integer", "description": "Messages in the queue when the call began"},
          "examined": {"type": "integer", "description": "How many of them (from its head) were looked at"},
          "replayed": {"type": "integer"}, "purged": {"type": "integer"},
          "letters": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "exchange": {"type": "string"}, "routingKey": {"type": "string"}, "kind": {"type": "string"},
            "reason": {"type": "string"}, "sender": {"type": "string"}, "deadOn": {"type": "integer", "format": "int64"},
            "bytes": {"type": "integer"}, "preview": {"type": "string"}}}}
        }
      },
      "ScheduleCreate": {
        "type": "object",
        "required": ["id", "cron", "function", "group"],
        "properties": {
          "id": {"type": "string", "description": "Letters, digits and -_:/@+=~ (no dot); its workflows are <id>:<tick, yyyyMMddTHHmmssZ>"},
          "cron": {"type": "string", "description": "Five fields (minute hour day-of-month month day-of-week), six with seconds first, or @daily etc.", "example": "0 9 * * MON-FRI"},
          "timeZone": {"type": "string", "description": "IANA time zone the expression reads in", "default": "UTC"},
          "function": {"type": "string"},
          "group": {"type": "string"},
          "args": {"type": "array", "items": {}},
          "timeout": {"type": "string", "description": "Each workflow's timeout from its start, a duration", "example": "24h"},
          "tags": {"type": "object", "additionalProperties": {"type": "string"}},
          "missedTicks": {"type": "string", "enum": ["once", "skip"], "default": "once"}
        }
      },
      "Schedule": {
        "type": "object",
        "properties": {
          "id": {"type": "string"}, "cron": {"type": "string"}, "timeZone": {"type": "string"}, "function": {"type": "string"},
          "group": {"type": "string"}, "args": {"type": "array", "items": {}}, "timeout": {"type": "integer", "format": "int64"},
          "tags": {"type": "object", "additionalProperties": {"type": "string"}}, "missedTicks": {"type": "string", "enum": ["once", "skip"]},
          "paused": {"type": "boolean"}, "nextTick": {"type": "integer", "format": "int64"}, "lastTick": {"type": "integer", "format": "int64"},
          "lastWorkflow": {"type": "string"}, "lastError": {"type": "string"},
          "createdOn": {"type": "integer", "format": "int64"}, "updatedOn": {"type": "integer", "format": "int64"}
        }
      },
      "SchedulePage": {
        "type": "object",
        "properties": {"schedules": {"type": "array", "items": {"$ref": "#/components/schemas/Schedule"}}, "cursor": {"type": "string"}}
      },
      "Value": {
        "type": "object",
        "properties": {
          "headers": {"type": "object", "additionalProperties": {"type": "string"}},
          "data": {"type": "string", "format": "byte", "description": "base64"}
        }
      },
      "Promise": {
        "type": "object",
        "required": ["id", "state", "param", "value", "timeout"],
        "properties": {
          "id": {"type": "string"},
          "state": {"type": "string", "enum": ["PENDING", "RESOLVED", "REJECTED", "REJECTED_CANCELED", "REJECTED_TIMEDOUT"]},
          "param": {"$ref": "#/components/schemas/Value"},
          "value": {"$ref": "#/components/schemas/Value"},
          "timeout": {"type": "integer", "format": "int64"},
          "idempotencyKeyForCreate": {"type": "string"},
          "idempotencyKeyForComplete": {"type": "string"},
          "createdOn": {"type": "integer", "format": "int64"},
          "completedOn": {"type": "integer", "format": "int64"},
          "tags": {"type": "object", "additionalProperties": {"type": "string"}}
        }
      },
      "CreatePromise": {
        "type": "object",
        "required": ["id", "timeout"],
        "properties": {
          "id": {"type": "string"},
          "timeout": {"type": "integer", "format": "int64", "description": "epoch milliseconds"},
          "param": {"$ref": "#/components/schemas/Value"},
          "tags": {"type": "object", "additionalProperties": {"type": "string"}}
        }
      },
      "CompletePromise": {
        "type": "object",
        "required": ["state"],
        "properties": {
          "state": {"type": "string", "enum": ["RESOLVED", "REJECTED", "REJECTED_CANCELED"]},
          "value": {"$ref": "#/components/schemas/Value"}
        }
      },
      "PromisePage": {
        "type": "object",
        "required": ["promises"],
        "properties": {"promises": {"type": "array", "items": {"$ref": "#/components/schemas/Promise"}}, "cursor": {"type": "string"}}
      },
      "StartWorkflow": {
        "type": "object",
        "required": ["id", "function", "group"],
        "properties": {
          "id": {"type": "string"},
          "function": {"type": "string"},
          "args": {"type": "array", "items": {}},
          "group": {"type": "string"},
          "timeout": {"description": "epoch milliseconds, or a duration such as \"24h\""},
          "tags": {"type": "object", "additionalProperties": {"type": "string"}}
        }
      },
      "Task": {
        "type": "object",
        "required": ["id", "group", "state", "version", "updatedOn"],
        "properties": {
          "id": {"type": "string"},
          "group": {"type": "string"},
          "state": {"type": "string", "enum": ["pending", "acquired", "suspended", "blocked", "completed"]},
          "version": {"type": "integer", "format": "int64", "description": "raised on every hand-out (fencing); not the code version"},
          "worker": {"type": "string"},
          "awaiting": {"type": "array", "items": {"type": "string"}},
          "blocked": {"type": "string", "description": "why the task is blocked (state blocked): the step where a replay departed from its history and both kinds, or a function no worker registered"},
          "code": {
            "type": "object", "required": ["function", "version", "queue"],
            "description": "the code version the workflow started under (register(_:version:)); its execute messages wait in queue for a worker that serves it",
            "properties": {"function": {"type": "string"}, "version": {"type": "integer"}, "queue": {"type": "string"}}
          },
          "updatedOn": {"type": "integer", "format": "int64"}
        }
      },
      "Decision": {
        "type": "object",
        "properties": {"reason": {"type": "string", "maxLength": 2000, "description": "recorded with the decision (cancel, fail)"}}
      },
      "TaskPage": {
        "type": "object",
        "required": ["tasks"],
        "properties": {"tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}}, "cursor": {"type": "string"}}
      },
      "OutboxPage": {
        "type": "object",
        "required": ["messages"],
        "properties": {"messages": {"type": "array", "items": {
          "type": "object",
          "required": ["seq", "exchange", "routingKey", "kind", "bytes", "reason", "failedOn"],
          "properties": {
            "seq": {"type": "integer", "format": "int64"}, "exchange": {"type": "string"}, "routingKey": {"type": "string"},
            "kind": {"type": "string"}, "bytes": {"type": "integer"}, "reason": {"type": "string"},
            "failedOn": {"type": "integer", "format": "int64"}
          }
        }}}
      },
      "Workflow": {
        "type": "object",
        "required": ["id", "state", "createdOn", "timeout"],
        "properties": {
          "id": {"type": "string"},
          "function": {"type": "string"},
          "state": {"type": "string", "enum": ["PENDING", "RESOLVED", "REJECTED", "REJECTED_CANCELED", "REJECTED_TIMEDOUT"]},
          "result": {"description": "the workflow's result, when resolved"},
          "error": {"description": "why it failed, when rejected"},
          "createdOn": {"type": "integer", "format": "int64"},
          "completedOn": {"type": "integer", "format": "int64"},
          "timeout": {"type": "integer", "format": "int64"},
          "task": {"$ref": "#/components/schemas/Task"}
        }
      },
      "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}, "reason": {"type": "string"}}
      },
      "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
          "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
              "code": {"type": "string", "enum": ["notFound", "alreadyExists", "alreadySettled", "invalidID", "invalidArgument", "payloadTooLarge", "unavailable", "internal"]},
              "message": {"type": "string"}
            }
          }
        }
      }
    }
  }
}
"""#
}
