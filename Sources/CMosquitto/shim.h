// Thin shim over Debian's libmosquitto (libmosquitto-dev). Only OutpostMQTT imports it.
#ifndef OUTPOST_CMOSQUITTO_SHIM_H
#define OUTPOST_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <mqtt_protocol.h>
#endif
