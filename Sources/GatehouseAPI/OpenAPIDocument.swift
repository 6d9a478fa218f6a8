/// The OpenAPI 3.1 description of every endpoint, served at `/openapi.json` and used by
/// the schemathesis run in CI. Keep it in step with `APIRoutes.swift`.
enum OpenAPIDocument {
    static let json = #"""
{
 "components": {
  "schemas": {
   "Accepted": {
    "properties": {
     "request_id": {
      "type": "string"
     },
     "status": {
      "enum": [
       "accepted",
       "processed",
       "failed"
      ],
      "type": "string"
     }
    },
    "required": [
     "request_id",
     "status"
    ],
    "type": "object"
   },
   "AddEntitlement": {
    "additionalProperties": false,
    "properties": {
     "device_id": {
      "$ref": "#/components/schemas/DeviceID"
     },
     "end_time": {
      "format": "date-time",
      "type": "string"
     },
     "product_id": {
      "maximum": 65535,
      "minimum": 1,
      "type": "integer"
     },
     "start_time": {
      "format": "date-time",
      "type": "string"
     }
    },
    "required": [
     "device_id",
     "product_id",
     "end_time"
    ],
    "type": "object"
   },
   "AuditEntry": {
    "properties": {
     "action": {
      "type": "string"
     },
     "actor": {
      "type": "string"
     },
     "at": {
      "format": "date-time",
      "type": "string"
     },
     "detail": {
      "type": [
       "string",
       "null"
      ]
     },
     "device_id": {
      "type": [
       "string",
       "null"
      ]
     },
     "id": {
      "type": "integer"
     },
     "request_id": {
      "type": [
       "string",
       "null"
      ]
     }
    },
    "required": [
     "id",
     "at",
     "actor",
     "action"
    ],
    "type": "object"
   },
   "AuditPage": {
    "properties": {
     "entries": {
      "items": {
       "$ref": "#/components/schemas/AuditEntry"
      },
      "type": "array"
     },
     "next": {
      "type": [
       "string",
       "null"
      ]
     }
    },
    "required": [
     "entries",
     "next"
    ],
    "type": "object"
   },
   "CancelEntitlement": {
    "additionalProperties": false,
    "properties": {
     "device_id": {
      "$ref": "#/components/schemas/DeviceID"
     },
     "product_id": {
      "maximum": 65535,
      "minimum": 1,
      "type": "integer"
     }
    },
    "required": [
     "device_id",
     "product_id"
    ],
    "type": "object"
   },
   "Device": {
    "properties": {
     "created_at": {
      "format": "date-time",
      "type": "string"
     },
     "device_id": {
      "$ref": "#/components/schemas/DeviceID"
     },
     "kcv": {
      "type": [
       "string",
       "null"
      ]
     },
     "key_version": {
      "type": "integer"
     },
     "status": {
      "enum": [
       "active",
       "suspended",
       "revoked"
      ],
      "type": "string"
     },
     "updated_at": {
      "format": "date-time",
      "type": "string"
     }
    },
    "required": [
     "device_id",
     "status",
     "key_version",
     "created_at",
     "updated_at"
    ],
    "type": "object"
   },
   "DeviceID": {
    "pattern": "^[A-Za-z0-9._:-]{1,64}$",
    "type": "string"
   },
   "DeviceKeyRequest": {
    "additionalProperties": false,
    "properties": {
     "device_id": {
      "$ref": "#/components/schemas/DeviceID"
     },
     "key": {
      "description": "AES-128 or AES-256 key in hex; never returned",
      "pattern": "^([0-9a-fA-F]{32}|[0-9a-fA-F]{64})$",
      "type": "string"
     }
    },
    "required": [
     "device_id",
     "key"
    ],
    "type": "object"
   },
   "DeviceList": {
    "properties": {
     "devices": {
      "items": {
       "$ref": "#/components/schemas/Device"
      },
      "type": "array"
     },
     "next": {
      "type": [
       "string",
       "null"
      ]
     }
    },
    "required": [
     "devices",
     "next"
    ],
    "type": "object"
   },
   "Entitlement": {
    "properties": {
     "end_time": {
      "format": "date-time",
      "type": "string"
     },
     "product_id": {
      "type": "integer"
     },
     "request_id": {
      "type": [
       "string",
       "null"
      ]
     },
     "start_time": {
      "format": "date-time",
      "type": "string"
     },
     "status": {
      "enum": [
       "active",
       "cancelled",
       "expired"
      ],
      "type": "string"
     }
    },
    "required": [
     "product_id",
     "start_time",
     "end_time",
     "status"
    ],
    "type": "object"
   },
   "EntitlementList": {
    "properties": {
     "device_id": {
      "$ref": "#/components/schemas/DeviceID"
     },
     "entitlements": {
      "items": {
       "$ref": "#/components/schemas/Entitlement"
      },
      "type": "array"
     }
    },
    "required": [
     "device_id",
     "entitlements"
    ],
    "type": "object"
   },
   "Error": {
    "properties": {
     "error": {
      "properties": {
       "code": {
        "type": "string"
       },
       "field": {
        "type": "string"
       },
       "message": {
        "type": "string"
       },
       "request_id": {
        "type": "string"
       }
      },
      "required": [
       "code",
       "message"
      ],
      "type": "object"
     }
    },
    "required": [
     "error"
    ],
    "type": "object"
   },
   "GenerateOSM": {
    "additionalProperties": false,
    "description": "Exactly one of device_id, device_ids, all",
    "properties": {
     "all": {
      "type": "boolean"
     },
     "device_id": {
      "$ref": "#/components/schemas/DeviceID"
     },
     "device_ids": {
      "items": {
       "$ref": "#/components/schemas/DeviceID"
      },
      "maxItems": 1000,
      "minItems": 1,
      "type": "array",
      "uniqueItems": true
     },
     "duration": {
      "default": 10,
      "description": "seconds on screen",
      "maximum": 86400,
      "minimum": 1,
      "type": "integer"
     },
     "expiry_time": {
      "format": "date-time",
      "type": "string"
     },
     "kind": {
      "default": "scroll_bottom",
      "enum": [
       "scroll_top",
       "scroll_bottom",
       "forced",
       "mailbox",
       "fingerprint"
      ],
      "type": "string"
     },
     "position": {
      "additionalProperties": false,
      "properties": {
       "x": {
        "maximum": 100,
        "minimum": 0,
        "type": "integer"
       },
       "y": {
        "maximum": 100,
        "minimum": 0,
        "type": "integer"
       }
      },
      "required": [
       "x",
       "y"
      ],
      "type": "object"
     },
     "priority": {
      "default": 0,
      "maximum": 7,
      "minimum": 0,
      "type": "integer"
     },
     "repeat_count": {
      "default": 1,
      "maximum": 255,
      "minimum": 1,
      "type": "integer"
     },
     "start_time": {
      "format": "date-time",
      "type": "string"
     },
     "text": {
      "maxLength": 1024,
      "type": "string"
     }
    },
    "type": "object"
   },
   "Health": {
    "properties": {
     "status": {
      "type": "string"
     }
    },
    "required": [
     "status"
    ],
    "type": "object"
   },
   "KeyRotation": {
    "additionalProperties": false,
    "properties": {
     "key": {
      "pattern": "^([0-9a-fA-F]{32}|[0-9a-fA-F]{64})$",
      "type": "string"
     }
    },
    "required": [
     "key"
    ],
    "type": "object"
   },
   "KeyStatus": {
    "properties": {
     "created_at": {
      "format": "date-time",
      "type": "string"
     },
     "device_id": {
      "$ref": "#/components/schemas/DeviceID"
     },
     "kcv": {
      "pattern": "^[0-9A-F]{6}$",
      "type": "string"
     },
     "key_bits": {
      "enum": [
       128,
       256
      ],
      "type": "integer"
     },
     "key_version": {
      "type": "integer"
     }
    },
    "required": [
     "device_id",
     "key_version",
     "kcv",
     "key_bits",
     "created_at"
    ],
    "type": "object"
   },
   "OSM": {
    "properties": {
     "device_id": {
      "type": [
       "string",
       "null"
      ]
     },
     "duration": {
      "type": "integer"
     },
     "expiry_time": {
      "format": "date-time",
      "type": "string"
     },
     "id": {
      "type": "integer"
     },
     "kind": {
      "type": "string"
     },
     "position": {
      "type": [
       "object",
       "null"
      ]
     },
     "priority": {
      "type": "integer"
     },
     "repeat_count": {
      "type": "integer"
     },
     "request_id": {
      "type": "string"
     },
     "start_time": {
      "format": "date-time",
      "type": "string"
     },
     "target": {
      "enum": [
       "device",
       "devices",
       "all"
      ],
      "type": "string"
     },
     "text": {
      "type": "string"
     }
    },
    "required": [
     "id",
     "request_id",
     "target",
     "kind",
     "text",
     "priority",
     "duration",
     "start_time",
     "expiry_time",
     "repeat_count"
    ],
    "type": "object"
   },
   "OSMList": {
    "properties": {
     "messages": {
      "items": {
       "$ref": "#/components/schemas/OSM"
      },
      "type": "array"
     },
     "next": {
      "type": [
       "string",
       "null"
      ]
     }
    },
    "required": [
     "messages",
     "next"
    ],
    "type": "object"
   },
   "RequestStatus": {
    "properties": {
     "accepted_at": {
      "format": "date-time",
      "type": "string"
     },
     "actor": {
      "type": "string"
     },
     "kind": {
      "type": "string"
     },
     "on_air_at": {
      "format": "date-time",
      "type": [
       "string",
       "null"
      ]
     },
     "processed_at": {
      "format": "date-time",
      "type": [
       "string",
       "null"
      ]
     },
     "reason": {
      "type": [
       "string",
       "null"
      ]
     },
     "request_id": {
      "type": "string"
     },
     "status": {
      "enum": [
       "accepted",
       "processed",
       "failed"
      ],
      "type": "string"
     }
    },
    "required": [
     "request_id",
     "kind",
     "status",
     "accepted_at"
    ],
    "type": "object"
   }
  },
  "securitySchemes": {
   "bearer": {
    "description": "Tokens from `gatehouse token create NAME --scopes read,write,keys`",
    "scheme": "bearer",
    "type": "http"
   }
  }
 },
 "info": {
  "description": "Register devices and keys, grant entitlements, send on-screen messages. Writes answer 202 once durably stored; follow them at /requests/{request_id}.",
  "title": "Gatehouse CAS API",
  "version": "1.0.0"
 },
 "openapi": "3.1.0",
 "paths": {
  "/add_entitlement": {
   "post": {
    "description": "",
    "parameters": [
     {
      "description": "Same key and body: the same answer; same key, other body: 409.",
      "in": "header",
      "name": "Idempotency-Key",
      "required": false,
      "schema": {
       "maxLength": 128,
       "minLength": 1,
       "pattern": "^[\\x21-\\x7E]+$",
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/AddEntitlement"
       }
      }
     },
     "required": true
    },
    "responses": {
     "202": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Accepted"
        }
       }
      },
      "description": "Durably stored; processed asynchronously",
      "headers": {
       "Location": {
        "description": "Where to follow the request",
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad input; `error.field` names the field"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "409": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Idempotency-Key reused with another body"
     },
     "413": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body larger than the limit"
     },
     "415": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body is not application/json"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A field is wrong; `error.field` names it"
     },
     "503": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Backlog too large; retry after the Retry-After seconds"
     }
    },
    "security": [
     {
      "bearer": [
       "write"
      ]
     }
    ],
    "summary": "Grant a product to a device from start_time to end_time"
   }
  },
  "/audit": {
   "get": {
    "parameters": [
     {
      "description": "",
      "in": "query",
      "name": "device_id",
      "required": false,
      "schema": {
       "$ref": "#/components/schemas/DeviceID"
      }
     },
     {
      "description": "",
      "in": "query",
      "name": "since",
      "required": false,
      "schema": {
       "format": "date-time",
       "type": "string"
      }
     },
     {
      "description": "",
      "in": "query",
      "name": "until",
      "required": false,
      "schema": {
       "format": "date-time",
       "type": "string"
      }
     },
     {
      "description": "",
      "in": "query",
      "name": "limit",
      "required": false,
      "schema": {
       "default": 100,
       "maximum": 500,
       "minimum": 1,
       "type": "integer"
      }
     },
     {
      "description": "",
      "in": "query",
      "name": "after",
      "required": false,
      "schema": {
       "maxLength": 64,
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/AuditPage"
        }
       }
      },
      "description": "A page"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad query parameter"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A query parameter is wrong; error.field names it"
     }
    },
    "security": [
     {
      "bearer": [
       "read"
      ]
     }
    ],
    "summary": "The audit log, newest first: activations, deactivations, key changes, messages, with who asked and the request id"
   }
  },
  "/audit/export": {
   "get": {
    "parameters": [
     {
      "description": "",
      "in": "query",
      "name": "device_id",
      "required": false,
      "schema": {
       "$ref": "#/components/schemas/DeviceID"
      }
     },
     {
      "description": "",
      "in": "query",
      "name": "since",
      "required": false,
      "schema": {
       "format": "date-time",
       "type": "string"
      }
     },
     {
      "description": "",
      "in": "query",
      "name": "until",
      "required": false,
      "schema": {
       "format": "date-time",
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/x-ndjson": {
        "schema": {
         "type": "string"
        }
       }
      },
      "description": "JSON lines"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad query parameter"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A query parameter is wrong; error.field names it"
     }
    },
    "security": [
     {
      "bearer": [
       "read"
      ]
     }
    ],
    "summary": "Every matching audit entry, oldest first, as JSON lines (for auditors)"
   }
  },
  "/cancel_entitlement": {
   "post": {
    "description": "",
    "parameters": [
     {
      "description": "Same key and body: the same answer; same key, other body: 409.",
      "in": "header",
      "name": "Idempotency-Key",
      "required": false,
      "schema": {
       "maxLength": 128,
       "minLength": 1,
       "pattern": "^[\\x21-\\x7E]+$",
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/CancelEntitlement"
       }
      }
     },
     "required": true
    },
    "responses": {
     "202": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Accepted"
        }
       }
      },
      "description": "Durably stored; processed asynchronously",
      "headers": {
       "Location": {
        "description": "Where to follow the request",
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad input; `error.field` names the field"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "409": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Idempotency-Key reused with another body"
     },
     "413": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body larger than the limit"
     },
     "415": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body is not application/json"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A field is wrong; `error.field` names it"
     },
     "503": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Backlog too large; retry after the Retry-After seconds"
     }
    },
    "security": [
     {
      "bearer": [
       "write"
      ]
     }
    ],
    "summary": "Cancel a device's entitlement to a product"
   }
  },
  "/device_keys": {
   "post": {
    "description": "",
    "parameters": [
     {
      "description": "Same key and body: the same answer; same key, other body: 409.",
      "in": "header",
      "name": "Idempotency-Key",
      "required": false,
      "schema": {
       "maxLength": 128,
       "minLength": 1,
       "pattern": "^[\\x21-\\x7E]+$",
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/DeviceKeyRequest"
       }
      }
     },
     "required": true
    },
    "responses": {
     "202": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Accepted"
        }
       }
      },
      "description": "Durably stored; processed asynchronously",
      "headers": {
       "Location": {
        "description": "Where to follow the request",
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad input; `error.field` names the field"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "409": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Idempotency-Key reused with another body"
     },
     "413": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body larger than the limit"
     },
     "415": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body is not application/json"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A field is wrong; `error.field` names it"
     },
     "503": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Backlog too large; retry after the Retry-After seconds"
     }
    },
    "security": [
     {
      "bearer": [
       "keys"
      ]
     }
    ],
    "summary": "Register a device and its AES key, or rotate the key of a known device"
   }
  },
  "/devices": {
   "get": {
    "parameters": [
     {
      "in": "query",
      "name": "limit",
      "required": false,
      "schema": {
       "default": 100,
       "maximum": 500,
       "minimum": 1,
       "type": "integer"
      }
     },
     {
      "description": "The `next` cursor of the previous page",
      "in": "query",
      "name": "after",
      "required": false,
      "schema": {
       "maxLength": 64,
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/DeviceList"
        }
       }
      },
      "description": "OK"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad query parameter"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A field is wrong; `error.field` names it"
     }
    },
    "security": [
     {
      "bearer": [
       "read"
      ]
     }
    ],
    "summary": "List devices, ordered by id"
   }
  },
  "/devices/{device_id}": {
   "get": {
    "parameters": [
     {
      "in": "path",
      "name": "device_id",
      "required": true,
      "schema": {
       "$ref": "#/components/schemas/DeviceID"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Device"
        }
       }
      },
      "description": "OK"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "No such resource"
     }
    },
    "security": [
     {
      "bearer": [
       "read"
      ]
     }
    ],
    "summary": "One device"
   }
  },
  "/devices/{device_id}/entitlements": {
   "get": {
    "parameters": [
     {
      "in": "path",
      "name": "device_id",
      "required": true,
      "schema": {
       "$ref": "#/components/schemas/DeviceID"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/EntitlementList"
        }
       }
      },
      "description": "OK"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "No such resource"
     }
    },
    "security": [
     {
      "bearer": [
       "read"
      ]
     }
    ],
    "summary": "A device's entitlements"
   }
  },
  "/devices/{device_id}/entitlements/{product_id}": {
   "delete": {
    "description": "",
    "parameters": [
     {
      "description": "Same key and body: the same answer; same key, other body: 409.",
      "in": "header",
      "name": "Idempotency-Key",
      "required": false,
      "schema": {
       "maxLength": 128,
       "minLength": 1,
       "pattern": "^[\\x21-\\x7E]+$",
       "type": "string"
      }
     },
     {
      "in": "path",
      "name": "device_id",
      "required": true,
      "schema": {
       "$ref": "#/components/schemas/DeviceID"
      }
     },
     {
      "in": "path",
      "name": "product_id",
      "required": true,
      "schema": {
       "maximum": 65535,
       "minimum": 1,
       "type": "integer"
      }
     }
    ],
    "responses": {
     "202": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Accepted"
        }
       }
      },
      "description": "Durably stored; processed asynchronously",
      "headers": {
       "Location": {
        "description": "Where to follow the request",
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad input; `error.field` names the field"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The path does not name a device (device_id is not 1 to 64 of A-Z a-z 0-9 . _ : -)"
     },
     "409": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Idempotency-Key reused with another body"
     },
     "413": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body larger than the limit"
     },
     "415": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body is not application/json"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A field is wrong; `error.field` names it"
     },
     "503": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Backlog too large; retry after the Retry-After seconds"
     }
    },
    "security": [
     {
      "bearer": [
       "write"
      ]
     }
    ],
    "summary": "Cancel a device's entitlement to a product"
   }
  },
  "/devices/{device_id}/key": {
   "get": {
    "parameters": [
     {
      "in": "path",
      "name": "device_id",
      "required": true,
      "schema": {
       "$ref": "#/components/schemas/DeviceID"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/KeyStatus"
        }
       }
      },
      "description": "OK"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "No such resource"
     }
    },
    "security": [
     {
      "bearer": [
       "read"
      ]
     }
    ],
    "summary": "Key status: version and KCV only, never the key"
   },
   "post": {
    "description": "",
    "parameters": [
     {
      "description": "Same key and body: the same answer; same key, other body: 409.",
      "in": "header",
      "name": "Idempotency-Key",
      "required": false,
      "schema": {
       "maxLength": 128,
       "minLength": 1,
       "pattern": "^[\\x21-\\x7E]+$",
       "type": "string"
      }
     },
     {
      "in": "path",
      "name": "device_id",
      "required": true,
      "schema": {
       "$ref": "#/components/schemas/DeviceID"
      }
     }
    ],
    "requestBody": {
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/KeyRotation"
       }
      }
     },
     "required": true
    },
    "responses": {
     "202": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Accepted"
        }
       }
      },
      "description": "Durably stored; processed asynchronously",
      "headers": {
       "Location": {
        "description": "Where to follow the request",
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad input; `error.field` names the field"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The path does not name a device (device_id is not 1 to 64 of A-Z a-z 0-9 . _ : -)"
     },
     "409": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Idempotency-Key reused with another body"
     },
     "413": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body larger than the limit"
     },
     "415": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body is not application/json"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A field is wrong; `error.field` names it"
     },
     "503": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Backlog too large; retry after the Retry-After seconds"
     }
    },
    "security": [
     {
      "bearer": [
       "keys"
      ]
     }
    ],
    "summary": "Rotate a device's key"
   }
  },
  "/devices/{device_id}/resume": {
   "post": {
    "description": "",
    "parameters": [
     {
      "description": "Same key and body: the same answer; same key, other body: 409.",
      "in": "header",
      "name": "Idempotency-Key",
      "required": false,
      "schema": {
       "maxLength": 128,
       "minLength": 1,
       "pattern": "^[\\x21-\\x7E]+$",
       "type": "string"
      }
     },
     {
      "in": "path",
      "name": "device_id",
      "required": true,
      "schema": {
       "$ref": "#/components/schemas/DeviceID"
      }
     }
    ],
    "responses": {
     "202": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Accepted"
        }
       }
      },
      "description": "Durably stored; processed asynchronously",
      "headers": {
       "Location": {
        "description": "Where to follow the request",
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad input; `error.field` names the field"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The path does not name a device (device_id is not 1 to 64 of A-Z a-z 0-9 . _ : -)"
     },
     "409": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Idempotency-Key reused with another body"
     },
     "413": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body larger than the limit"
     },
     "415": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body is not application/json"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A field is wrong; `error.field` names it"
     },
     "503": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Backlog too large; retry after the Retry-After seconds"
     }
    },
    "security": [
     {
      "bearer": [
       "write"
      ]
     }
    ],
    "summary": "Resume a suspended device"
   }
  },
  "/devices/{device_id}/revoke": {
   "post": {
    "description": "",
    "parameters": [
     {
      "description": "Same key and body: the same answer; same key, other body: 409.",
      "in": "header",
      "name": "Idempotency-Key",
      "required": false,
      "schema": {
       "maxLength": 128,
       "minLength": 1,
       "pattern": "^[\\x21-\\x7E]+$",
       "type": "string"
      }
     },
     {
      "in": "path",
      "name": "device_id",
      "required": true,
      "schema": {
       "$ref": "#/components/schemas/DeviceID"
      }
     }
    ],
    "responses": {
     "202": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Accepted"
        }
       }
      },
      "description": "Durably stored; processed asynchronously",
      "headers": {
       "Location": {
        "description": "Where to follow the request",
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad input; `error.field` names the field"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The path does not name a device (device_id is not 1 to 64 of A-Z a-z 0-9 . _ : -)"
     },
     "409": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Idempotency-Key reused with another body"
     },
     "413": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body larger than the limit"
     },
     "415": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body is not application/json"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A field is wrong; `error.field` names it"
     },
     "503": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Backlog too large; retry after the Retry-After seconds"
     }
    },
    "security": [
     {
      "bearer": [
       "write"
      ]
     }
    ],
    "summary": "Revoke a device for good: it gets no more EMMs"
   }
  },
  "/devices/{device_id}/suspend": {
   "post": {
    "description": "",
    "parameters": [
     {
      "description": "Same key and body: the same answer; same key, other body: 409.",
      "in": "header",
      "name": "Idempotency-Key",
      "required": false,
      "schema": {
       "maxLength": 128,
       "minLength": 1,
       "pattern": "^[\\x21-\\x7E]+$",
       "type": "string"
      }
     },
     {
      "in": "path",
      "name": "device_id",
      "required": true,
      "schema": {
       "$ref": "#/components/schemas/DeviceID"
      }
     }
    ],
    "responses": {
     "202": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Accepted"
        }
       }
      },
      "description": "Durably stored; processed asynchronously",
      "headers": {
       "Location": {
        "description": "Where to follow the request",
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad input; `error.field` names the field"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The path does not name a device (device_id is not 1 to 64 of A-Z a-z 0-9 . _ : -)"
     },
     "409": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Idempotency-Key reused with another body"
     },
     "413": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body larger than the limit"
     },
     "415": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body is not application/json"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A field is wrong; `error.field` names it"
     },
     "503": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Backlog too large; retry after the Retry-After seconds"
     }
    },
    "security": [
     {
      "bearer": [
       "write"
      ]
     }
    ],
    "summary": "Suspend a device: no new entitlements or messages until resumed"
   }
  },
  "/generate_osm": {
   "post": {
    "description": "",
    "parameters": [
     {
      "description": "Same key and body: the same answer; same key, other body: 409.",
      "in": "header",
      "name": "Idempotency-Key",
      "required": false,
      "schema": {
       "maxLength": 128,
       "minLength": 1,
       "pattern": "^[\\x21-\\x7E]+$",
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/GenerateOSM"
       }
      }
     },
     "required": true
    },
    "responses": {
     "202": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Accepted"
        }
       }
      },
      "description": "Durably stored; processed asynchronously",
      "headers": {
       "Location": {
        "description": "Where to follow the request",
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad input; `error.field` names the field"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "409": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Idempotency-Key reused with another body"
     },
     "413": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body larger than the limit"
     },
     "415": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Body is not application/json"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A field is wrong; `error.field` names it"
     },
     "503": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Backlog too large; retry after the Retry-After seconds"
     }
    },
    "security": [
     {
      "bearer": [
       "write"
      ]
     }
    ],
    "summary": "Send an on-screen message to one device, a list, or all devices"
   }
  },
  "/healthz": {
   "get": {
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Health"
        }
       }
      },
      "description": "Alive"
     }
    },
    "security": [],
    "summary": "Liveness"
   }
  },
  "/metrics": {
   "get": {
    "responses": {
     "200": {
      "content": {
       "text/plain": {
        "schema": {
         "type": "string"
        }
       }
      },
      "description": "Metrics"
     }
    },
    "security": [],
    "summary": "Prometheus text exposition"
   }
  },
  "/openapi.json": {
   "get": {
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      },
      "description": "OpenAPI 3.1"
     }
    },
    "security": [],
    "summary": "This document"
   }
  },
  "/osm": {
   "get": {
    "parameters": [
     {
      "in": "query",
      "name": "limit",
      "required": false,
      "schema": {
       "default": 100,
       "maximum": 500,
       "minimum": 1,
       "type": "integer"
      }
     },
     {
      "description": "The `next` cursor of the previous page",
      "in": "query",
      "name": "after",
      "required": false,
      "schema": {
       "maxLength": 64,
       "type": "string"
      }
     },
     {
      "in": "query",
      "name": "device_id",
      "required": false,
      "schema": {
       "$ref": "#/components/schemas/DeviceID"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/OSMList"
        }
       }
      },
      "description": "OK"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Bad query parameter"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "A field is wrong; `error.field` names it"
     }
    },
    "security": [
     {
      "bearer": [
       "read"
      ]
     }
    ],
    "summary": "List on-screen messages, newest first"
   }
  },
  "/osm/{id}": {
   "get": {
    "parameters": [
     {
      "in": "path",
      "name": "id",
      "required": true,
      "schema": {
       "minimum": 1,
       "type": "integer"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/OSM"
        }
       }
      },
      "description": "OK"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "No such resource"
     }
    },
    "security": [
     {
      "bearer": [
       "read"
      ]
     }
    ],
    "summary": "One on-screen message"
   }
  },
  "/readyz": {
   "get": {
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Health"
        }
       }
      },
      "description": "Ready"
     },
     "503": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Not ready"
     }
    },
    "security": [],
    "summary": "Readiness: the database answers"
   }
  },
  "/requests/{request_id}": {
   "get": {
    "parameters": [
     {
      "in": "path",
      "name": "request_id",
      "required": true,
      "schema": {
       "maxLength": 64,
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RequestStatus"
        }
       }
      },
      "description": "OK"
     },
     "401": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Missing or invalid bearer token"
     },
     "403": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The token lacks the scope"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "No such resource"
     }
    },
    "security": [
     {
      "bearer": [
       "read"
      ]
     }
    ],
    "summary": "Status of an accepted request"
   }
  }
 }
}
"""#
}
