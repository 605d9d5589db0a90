// Generated from client.proto by `npm run proto`. Do not edit.
export const clientDescriptor = {
  "nested": {
    "chat": {
      "nested": {
        "v1": {
          "nested": {
            "ClientFrame": {
              "oneofs": {
                "body": {
                  "oneof": [
                    "hello",
                    "send",
                    "ack",
                    "sync",
                    "history",
                    "presence_query",
                    "heartbeat",
                    "read",
                    "typing"
                  ]
                }
              },
              "fields": {
                "ref": {
                  "type": "uint64",
                  "id": 1
                },
                "hello": {
                  "type": "Hello",
                  "id": 2
                },
                "send": {
                  "type": "Send",
                  "id": 3
                },
                "ack": {
                  "type": "Ack",
                  "id": 4
                },
                "sync": {
                  "type": "Sync",
                  "id": 5
                },
                "history": {
                  "type": "History",
                  "id": 6
                },
                "presence_query": {
                  "type": "PresenceQuery",
                  "id": 7
                },
                "heartbeat": {
                  "type": "Heartbeat",
                  "id": 8
                },
                "read": {
                  "type": "Read",
                  "id": 9
                },
                "typing": {
                  "type": "Typing",
                  "id": 10
                }
              }
            },
            "Hello": {
              "fields": {
                "token": {
                  "type": "string",
                  "id": 1
                },
                "device_id": {
                  "type": "string",
                  "id": 2
                },
                "last_inbox_seq": {
                  "type": "uint64",
                  "id": 3
                }
              }
            },
            "Send": {
              "fields": {
                "channel_id": {
                  "type": "string",
                  "id": 1
                },
                "client_msg_id": {
                  "type": "string",
                  "id": 2
                },
                "text": {
                  "type": "string",
                  "id": 3
                }
              }
            },
            "Ack": {
              "fields": {
                "inbox_seq": {
                  "type": "uint64",
                  "id": 1
                }
              }
            },
            "Sync": {
              "fields": {
                "after_inbox_seq": {
                  "type": "uint64",
                  "id": 1
                },
                "limit": {
                  "type": "uint32",
                  "id": 2
                }
              }
            },
            "History": {
              "fields": {
                "channel_id": {
                  "type": "string",
                  "id": 1
                },
                "before_message_id": {
                  "type": "string",
                  "id": 2
                },
                "limit": {
                  "type": "uint32",
                  "id": 3
                }
              }
            },
            "PresenceQuery": {
              "fields": {
                "user_ids": {
                  "rule": "repeated",
                  "type": "string",
                  "id": 1
                }
              }
            },
            "Heartbeat": {
              "fields": {}
            },
            "Read": {
              "fields": {
                "channel_id": {
                  "type": "string",
                  "id": 1
                },
                "channel_seq": {
                  "type": "uint64",
                  "id": 2
                }
              }
            },
            "Typing": {
              "fields": {
                "channel_id": {
                  "type": "string",
                  "id": 1
                }
              }
            },
            "ServerFrame": {
              "oneofs": {
                "body": {
                  "oneof": [
                    "welcome",
                    "send_ack",
                    "delivery",
                    "sync_result",
                    "history_result",
                    "presence",
                    "presence_result",
                    "error",
                    "read_receipt",
                    "typing"
                  ]
                }
              },
              "fields": {
                "ref": {
                  "type": "uint64",
                  "id": 1
                },
                "welcome": {
                  "type": "Welcome",
                  "id": 2
                },
                "send_ack": {
                  "type": "SendAck",
                  "id": 3
                },
                "delivery": {
                  "type": "Delivery",
                  "id": 4
                },
                "sync_result": {
                  "type": "SyncResult",
                  "id": 5
                },
                "history_result": {
                  "type": "HistoryResult",
                  "id": 6
                },
                "presence": {
                  "type": "Presence",
                  "id": 7
                },
                "presence_result": {
                  "type": "PresenceResult",
                  "id": 8
                },
                "error": {
                  "type": "Error",
                  "id": 9
                },
                "read_receipt": {
                  "type": "ReadReceipt",
                  "id": 10
                },
                "typing": {
                  "type": "TypingNotice",
                  "id": 11
                }
              }
            },
            "Welcome": {
              "fields": {
                "user_id": {
                  "type": "string",
                  "id": 1
                },
                "device_id": {
                  "type": "string",
                  "id": 2
                },
                "inbox_head_seq": {
                  "type": "uint64",
                  "id": 3
                },
                "heartbeat_interval_ms": {
                  "type": "uint32",
                  "id": 4
                },
                "node_id": {
                  "type": "string",
                  "id": 5
                },
                "resumed_after_inbox_seq": {
                  "type": "uint64",
                  "id": 6
                }
              }
            },
            "SendAck": {
              "fields": {
                "channel_id": {
                  "type": "string",
                  "id": 1
                },
                "client_msg_id": {
                  "type": "string",
                  "id": 2
                },
                "message_id": {
                  "type": "string",
                  "id": 3
                },
                "channel_seq": {
                  "type": "uint64",
                  "id": 4
                },
                "created_at_ms": {
                  "type": "uint64",
                  "id": 5
                }
              }
            },
            "Delivery": {
              "fields": {
                "inbox_seq": {
                  "type": "uint64",
                  "id": 1
                },
                "message": {
                  "type": "Message",
                  "id": 2
                }
              }
            },
            "SyncResult": {
              "fields": {
                "deliveries": {
                  "rule": "repeated",
                  "type": "Delivery",
                  "id": 1
                },
                "has_more": {
                  "type": "bool",
                  "id": 2
                }
              }
            },
            "HistoryResult": {
              "fields": {
                "messages": {
                  "rule": "repeated",
                  "type": "Message",
                  "id": 1
                },
                "has_more": {
                  "type": "bool",
                  "id": 2
                }
              }
            },
            "ReadReceipt": {
              "fields": {
                "channel_id": {
                  "type": "string",
                  "id": 1
                },
                "user_id": {
                  "type": "string",
                  "id": 2
                },
                "channel_seq": {
                  "type": "uint64",
                  "id": 3
                }
              }
            },
            "TypingNotice": {
              "fields": {
                "channel_id": {
                  "type": "string",
                  "id": 1
                },
                "user_id": {
                  "type": "string",
                  "id": 2
                },
                "expires_in_ms": {
                  "type": "uint32",
                  "id": 3
                }
              }
            },
            "Presence": {
              "fields": {
                "user_id": {
                  "type": "string",
                  "id": 1
                },
                "online": {
                  "type": "bool",
                  "id": 2
                },
                "last_active_at_ms": {
                  "type": "uint64",
                  "id": 3
                }
              }
            },
            "PresenceResult": {
              "fields": {
                "presences": {
                  "rule": "repeated",
                  "type": "Presence",
                  "id": 1
                }
              }
            },
            "Error": {
              "fields": {
                "code": {
                  "type": "string",
                  "id": 1
                },
                "message": {
                  "type": "string",
                  "id": 2
                }
              }
            },
            "Message": {
              "fields": {
                "message_id": {
                  "type": "string",
                  "id": 1
                },
                "channel_id": {
                  "type": "string",
                  "id": 2
                },
                "sender_id": {
                  "type": "string",
                  "id": 3
                },
                "client_msg_id": {
                  "type": "string",
                  "id": 4
                },
                "text": {
                  "type": "string",
                  "id": 5
                },
                "created_at_ms": {
                  "type": "uint64",
                  "id": 6
                },
                "channel_seq": {
                  "type": "uint64",
                  "id": 7
                }
              }
            }
          }
        }
      }
    }
  }
} as const;
