// Drives Kyuubi's own Java REST client (kyuubi-rest-client's BatchRestApi) for the tests: one command per
// line on stdin, one answer per line on stdout. Each answer is what the client parsed, written back out
// with the client's own JSON mapping, so a field the client failed to read shows up as missing.
//
//   {"op": "create", "user": "alice", "password": "a-pass", "request": {...},
//    "resourceFile": "/path" | null, "extraResources": ["/path", ...] | null}
//   {"op": "get" | "delete", "id": "..."}
//   {"op": "list", "batchType": .., "batchUser": .., "batchState": .., "batchName": .., "createTime": ..,
//    "endTime": .., "from": 0, "size": 10, "desc": true}
//   {"op": "log", "id": "...", "from": 0, "size": 10}
//   {"op": "reassign", "kyuubiInstance": "..."}
// Answers: {"ok": true, "value": ...} or {"ok": false, "error": "...", "status": 404}.

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.http.client.HttpResponseException;
import org.apache.kyuubi.client.BatchRestApi;
import org.apache.kyuubi.client.KyuubiRestClient;
import org.apache.kyuubi.client.api.v1.dto.BatchRequest;
import org.apache.kyuubi.client.api.v1.dto.ReassignBatchRequest;
import org.apache.kyuubi.client.util.JsonUtils;

public final class KyuubiClientDriver {
  private static final ObjectMapper MAPPER = new ObjectMapper();

  private final String baseUrl;
  private final Map<String, BatchRestApi> apis = new HashMap<>();

  private KyuubiClientDriver(String baseUrl) {
    this.baseUrl = baseUrl;
  }

  public static void main(String[] args) throws Exception {
    KyuubiClientDriver driver = new KyuubiClientDriver(args[0]);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) {
        continue;
      }
      System.out.println(driver.answer(MAPPER.readTree(line)));
      System.out.flush();
    }
  }

  private BatchRestApi api(JsonNode command) {
    String user = command.path("user").asText("admin");
    String password = command.path("password").asText("");
    return apis.computeIfAbsent(user + "\u0000" + password, key -> new BatchRestApi(
        KyuubiRestClient.builder(baseUrl)
            .authHeaderMethod(KyuubiRestClient.AuthHeaderMethod.BASIC)
            .username(user)
            .password(password)
            .maxAttempts(1)
            .build()));
  }

  private String answer(JsonNode command) throws Exception {
    ObjectNode out = MAPPER.createObjectNode();
    try {
      Object value = run(command);
      out.put("ok", true);
      out.set("value", MAPPER.readTree(JsonUtils.toJson(value)));
    } catch (RuntimeException e) {
      out.put("ok", false);
      out.put("error", String.valueOf(e.getMessage()));
      for (Throwable t = e; t != null; t = t.getCause()) {
        if (t instanceof HttpResponseException) {
          out.put("status", ((HttpResponseException) t).getStatusCode());
          out.put("body", ((HttpResponseException) t).getReasonPhrase());
        }
      }
    }
    return MAPPER.writeValueAsString(out);
  }

  private Object run(JsonNode c) throws Exception {
    BatchRestApi api = api(c);
    switch (c.path("op").asText()) {
      case "create":
        BatchRequest request = MAPPER.treeToValue(c.get("request"), BatchRequest.class);
        if (c.path("resourceFile").isMissingNode() || c.path("resourceFile").isNull()) {
          return api.createBatch(request);
        }
        File resource = new File(c.get("resourceFile").asText());
        if (c.path("extraResources").isMissingNode() || c.path("extraResources").isNull()) {
          return api.createBatch(request, resource);
        }
        List<String> extra = new ArrayList<>();
        c.get("extraResources").forEach(node -> extra.add(node.asText()));
        return api.createBatch(request, resource, extra);
      case "get":
        return api.getBatchById(c.get("id").asText());
      case "list":
        return api.listBatches(
            text(c, "batchType"), text(c, "batchUser"), text(c, "batchState"), text(c, "batchName"),
            c.hasNonNull("createTime") ? c.get("createTime").asLong() : null,
            c.hasNonNull("endTime") ? c.get("endTime").asLong() : null,
            c.path("from").asInt(0), c.path("size").asInt(100), c.path("desc").asBoolean(false));
      case "log":
        return api.getBatchLocalLog(c.get("id").asText(), c.path("from").asInt(0), c.path("size").asInt(100));
      case "delete":
        return api.deleteBatch(c.get("id").asText());
      case "reassign":
        return api.reassignBatch(new ReassignBatchRequest(c.get("kyuubiInstance").asText()));
      default:
        throw new IllegalArgumentException("unknown op " + c.path("op").asText());
    }
  }

  private static String text(JsonNode c, String field) {
    return c.hasNonNull(field) ? c.get(field).asText() : null;
  }
}
